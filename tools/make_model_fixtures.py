"""Builds the model-parity fixtures of Tests/DiffusionTests/Fixtures/models.

Tiny random-weight models made with diffusers' and transformers' own classes, saved as
diffusers folders, and their reference outputs for fixed inputs, written as safetensors:

  pipeline/            a latent text-to-image model (text encoder, UNet "a", VAE, DDIM)
                       saved by StableDiffusionPipeline.save_pretrained
  unet-b/              a second UNet: three blocks, two layers each, per-block heads,
                       linear projections, 3 channels (pixel space)
  unet-c/              a UNet without cross-attention (DownBlock2D/UpBlock2D/UNetMidBlock2D)
  reference.safetensors  inputs and outputs: text-encoder hidden states, UNet noise
                       predictions, VAE encode (mean, std) and decode, a full DDIM sampling
                       run with classifier-free guidance from given latents, and the
                       gradients of a fixed loss with respect to every parameter of the
                       text encoder and UNet "a".

Run once, never in CI (needs torch, diffusers, transformers); `--check-reload` only checks
that the committed folders load back in diffusers with the recorded outputs:
  python3 -m venv tools/.venv-models
  tools/.venv-models/bin/pip install torch diffusers transformers safetensors numpy
  tools/.venv-models/bin/python tools/make_model_fixtures.py
"""

import json
import os
import shutil

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "Tests", "DiffusionTests", "Fixtures",
                    "models")
torch.set_num_threads(2)


def randomize(model, seed):
    """Random weights everywhere (norms and zero-initialized convs included), so that
    every parameter matters in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) / max(fan_in, 1) ** 0.5)
    return model.eval()


def text_encoder():
    config = CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=37,
                            num_hidden_layers=2, num_attention_heads=4,
                            max_position_embeddings=77, hidden_act="quick_gelu",
                            bos_token_id=998, eos_token_id=999, pad_token_id=999)
    return randomize(CLIPTextModel(config), 1)


def unet_a():
    return randomize(UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=8), 2)


def unet_b():
    return randomize(UNet2DConditionModel(
        sample_size=16, in_channels=3, out_channels=3, layers_per_block=2,
        block_out_channels=(8, 16, 16),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24, attention_head_dim=(2, 2, 4), norm_num_groups=4,
        use_linear_projection=True), 3)


def unet_c():
    return randomize(UNet2DConditionModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), mid_block_type="UNetMidBlock2D",
        attention_head_dim=4, norm_num_groups=4, cross_attention_dim=16), 4)


def vae():
    return randomize(AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=4, sample_size=16), 5)


def tiny_tokenizer():
    """The pipeline folder needs a tokenizer; prompts are given as token ids here."""
    vocab = {"<|startoftext|>": 998, "<|endoftext|>": 999}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=8)


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(ROOT)
    g = torch.Generator().manual_seed(100)
    out = {}

    encoder, unet, autoencoder = text_encoder(), unet_a(), vae()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=autoencoder, text_encoder=encoder,
                                   tokenizer=tiny_tokenizer(), unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(os.path.join(ROOT, "pipeline"), safe_serialization=True)

    with torch.no_grad():
        # text encoder: last hidden state for two id sequences of length 8
        ids = torch.tensor([[998, 5, 17, 300, 999, 999, 999, 999],
                            [998, 42, 999, 999, 999, 999, 999, 999]])
        out["text.input_ids"] = ids.float()
        hidden = encoder(ids).last_hidden_state
        out["text.last_hidden_state"] = hidden

        # UNet "a": noise prediction with cross-attention context
        sample = torch.randn(2, 4, 8, 8, generator=g)
        context = torch.randn(2, 5, 32, generator=g)
        timesteps = torch.tensor([10, 500])
        out["unet_a.sample"], out["unet_a.context"] = sample, context
        out["unet_a.timesteps"] = timesteps.float()
        out["unet_a.output"] = unet(sample, timesteps, encoder_hidden_states=context).sample

        # UNet "b" and "c"
        # "b" and "c" are stored in fp16 (as many released checkpoints are): their
        # references are computed with the fp16-rounded weights, widened to fp32.
        b = unet_b().half()
        b.save_pretrained(os.path.join(ROOT, "unet-b"), safe_serialization=True)
        b = b.float()
        sample_b = torch.randn(2, 3, 16, 16, generator=g)
        context_b = torch.randn(2, 3, 24, generator=g)
        out["unet_b.sample"], out["unet_b.context"] = sample_b, context_b
        out["unet_b.timesteps"] = torch.tensor([999.0, 1.0])
        out["unet_b.output"] = b(sample_b, torch.tensor([999, 1]),
                                 encoder_hidden_states=context_b).sample
        c = unet_c().half()
        c.save_pretrained(os.path.join(ROOT, "unet-c"), safe_serialization=True)
        c = c.float()
        sample_c = torch.randn(1, 3, 8, 8, generator=g)
        out["unet_c.sample"] = sample_c
        out["unet_c.timesteps"] = torch.tensor([250.0])
        out["unet_c.output"] = c(sample_c, torch.tensor([250]), encoder_hidden_states=None).sample

        # VAE: encode (mean, std) and decode
        image = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
        posterior = autoencoder.encode(image).latent_dist
        out["vae.image"] = image
        out["vae.mean"], out["vae.std"] = posterior.mean, posterior.std
        latents = torch.randn(1, 4, 4, 4, generator=g)
        out["vae.latents"] = latents
        out["vae.decoded"] = autoencoder.decode(latents).sample

        # A full DDIM run with classifier-free guidance from given latents.
        cond_ids = torch.tensor([[998, 7, 8, 9, 999, 999, 999, 999]])
        uncond_ids = torch.tensor([[998, 999, 999, 999, 999, 999, 999, 999]])
        start = torch.randn(1, 4, 8, 8, generator=g)
        out["pipeline.cond_ids"], out["pipeline.uncond_ids"] = cond_ids.float(), uncond_ids.float()
        out["pipeline.latents"] = start
        image = pipe(prompt_embeds=encoder(cond_ids).last_hidden_state,
                     negative_prompt_embeds=encoder(uncond_ids).last_hidden_state,
                     latents=start.clone(), num_inference_steps=10, guidance_scale=7.5,
                     output_type="pt").images
        out["pipeline.image"] = image  # [1, 3, 32, 32] in [0, 1]

    # Gradients of a fixed loss w.r.t. every parameter of the text encoder and UNet "a".
    encoder.train(False), unet.train(False)
    noise_target = torch.randn(2, 4, 8, 8, generator=g)
    out["grad.noise_target"] = noise_target
    prediction = unet(sample, timesteps, encoder_hidden_states=encoder(ids).last_hidden_state).sample
    loss = ((prediction - noise_target) ** 2).mean()
    loss.backward()
    out["grad.loss"] = loss.detach().reshape(1)
    for name, p in encoder.named_parameters():
        out["grad.text_encoder." + name] = p.grad
    for name, p in unet.named_parameters():
        out["grad.unet." + name] = p.grad

    tensors = {k: v.detach().contiguous().float() for k, v in out.items()}
    save_file(tensors, os.path.join(ROOT, "reference.safetensors"),
              metadata={"diffusers": __import__("diffusers").__version__,
                        "transformers": __import__("transformers").__version__,
                        "torch": torch.__version__})
    sizes = {d: sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(os.path.join(ROOT, d))
                    for f in fs) if os.path.isdir(os.path.join(ROOT, d)) else
             os.path.getsize(os.path.join(ROOT, d)) for d in os.listdir(ROOT)}
    print(json.dumps(sizes, indent=1))
    for name, model in [("text encoder", encoder), ("unet a", unet), ("unet b", b), ("unet c", c),
                        ("vae", autoencoder)]:
        print(name, sum(p.numel() for p in model.parameters()), "parameters")


def check_reload():
    """The saved folders load back in diffusers and give the recorded outputs (the
    issue's round-trip check; once `duo merge` writes folders, they get the same check)."""
    from safetensors.torch import load_file
    ref = load_file(os.path.join(ROOT, "reference.safetensors"))
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, "pipeline"))
    with torch.no_grad():
        unet_out = pipe.unet(ref["unet_a.sample"], ref["unet_a.timesteps"].long(),
                             encoder_hidden_states=ref["unet_a.context"]).sample
        b = UNet2DConditionModel.from_pretrained(os.path.join(ROOT, "unet-b")).float()
        b_out = b(ref["unet_b.sample"], ref["unet_b.timesteps"].long(),
                  encoder_hidden_states=ref["unet_b.context"]).sample
        decoded = pipe.vae.decode(ref["vae.latents"]).sample
    for name, got in [("unet_a.output", unet_out), ("unet_b.output", b_out),
                      ("vae.decoded", decoded)]:
        err = (got - ref[name]).abs().max().item()
        assert err < 1e-5, (name, err)
        print(f"reloaded in diffusers: {name} max abs difference {err:.2e}")


if __name__ == "__main__":
    import sys
    if "--check-reload" not in sys.argv:
        main()
    check_reload()
