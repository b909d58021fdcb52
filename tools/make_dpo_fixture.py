"""Fixture for duo's DUO loss: one DUO training step in PyTorch, written as DUO's official code
computes it (naver-ai/DUO, train/unlearn-sd.py: [unsafe, safe, prior] in one UNet call, the
reference with the adapters disabled, per-image MSE, -logsigmoid(-beta * diff), lambda times
the prior MSE on pure noise at the last timestep), on the tiny pipeline folder of
tools/make_model_fixtures.py with peft LoRA adapters on attn1 (rank 4, alpha 4, random A and B).

  tools/.venv-models/bin/python tools/make_dpo_fixture.py

Writes Tests/UnlearningTests/Fixtures/dpo/{adapter.safetensors,step.safetensors,
prompted-step.safetensors}: the adapters (diffusers' LoRA keys), the batch, the contexts, the
loss terms and the gradient of every adapter weight; the prompted step conditions one pair on
a prompt (prompted DUO) and the other on the empty prompt.

  tools/.venv-models/bin/python tools/make_dpo_fixture.py --unconditional
adds unconditional-step.safetensors from the committed adapter and prompted step: the
prompted step plus duo's unconditional-preserving term, lambda_u * mean over both images of
|eps_theta(x_t, empty) - eps_ref(x_t, empty)|^2 (Sources/Unlearning/Training/DUOLoss.swift),
written here independently of duo's code.

  tools/.venv-models/bin/python tools/make_dpo_fixture.py --dspo
adds dspo-step.safetensors: DSPO's step (duo unlearn --method dspo) on the committed adapter
and prompt-free batch, written as DSPO's code computes it (see dspo_step).
"""

import os

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

HERE = os.path.dirname(__file__)
PIPELINE = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures", "models", "pipeline")
OUT = os.path.join(HERE, "..", "Tests", "UnlearningTests", "Fixtures", "dpo")
BETA, LAMBDA, RANK = 50.0, 30.0, 4


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(11)
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE, safety_checker=None, requires_safety_checker=False)
    unet, scheduler = pipe.unet, DDPMScheduler.from_config(pipe.scheduler.config)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian",
                                target_modules=["attn1.to_k", "attn1.to_q", "attn1.to_v", "attn1.to_out.0"]))
    with torch.no_grad():  # non-zero B, so both A and B get gradients
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    lora = {k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(unet).items()}
    save_file({"unet." + k: v for k, v in lora.items()}, os.path.join(OUT, "adapter.safetensors"),
              metadata={"format": "pt"})

    ids = pipe.tokenizer([""], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        empty = pipe.text_encoder(ids).last_hidden_state
    b = 2
    unsafe = torch.randn(b, 4, 8, 8, generator=g)
    safe = unsafe + 0.3 * torch.randn(b, 4, 8, 8, generator=g)
    noise = torch.randn(b, 4, 8, 8, generator=g)
    timesteps = torch.tensor([700, 40, 351, 5])  # unsafe then safe: one per image
    batch = {"unsafe": unsafe, "safe": safe, "noise": noise, "timesteps": timesteps.float()}
    prompt_free = (empty.repeat(b, 1, 1), empty.repeat(b, 1, 1))
    step(unet, scheduler, batch, *prompt_free, "step.safetensors")

    # Prompted DUO: the first pair conditioned on an "unsafe prompt", its output-preserving
    # term on a "safe prompt"; the second pair prompt-free. The fixture's tokenizer knows no
    # words, so the two prompts' embeddings are random draws; they go in the file, and the
    # test checks the loss's wiring of contexts, not the text encoder.
    g = torch.Generator().manual_seed(12)
    unsafe_prompt = torch.randn(empty.shape, generator=g)
    safe_prompt = torch.randn(empty.shape, generator=g)
    pair_context = torch.cat([unsafe_prompt, empty])
    prior_context = torch.cat([safe_prompt, empty])
    step(unet, scheduler, batch, pair_context, prior_context, "prompted-step.safetensors")


def step(unet, scheduler, batch, pair_context, prior_context, filename):
    """One DUO step on `batch`: the pair images conditioned on pair_context [B, S, D], the
    prior term on prior_context; writes the loss terms and every adapter gradient."""
    unsafe, safe, noise, timesteps = batch["unsafe"], batch["safe"], batch["noise"], batch["timesteps"].long()
    b = unsafe.shape[0]
    unet.zero_grad(set_to_none=True)
    model_input = torch.cat([unsafe, safe])
    noisy = scheduler.add_noise(model_input, noise.repeat(2, 1, 1, 1), timesteps)
    all_t = torch.cat([timesteps, torch.full((b,), 999)])
    inputs = torch.cat([noisy, noise])
    context = torch.cat([pair_context, pair_context, prior_context])

    pred = unet(inputs, all_t, context).sample
    unet.disable_adapters()
    with torch.no_grad():
        ref = unet(inputs, all_t, context).sample
    unet.enable_adapters()
    model_pred, model_base, model_prior = pred.chunk(3)
    refer_pred, refer_base, refer_prior = ref.chunk(3)
    mse = lambda x: F.mse_loss(x.float(), noise.float(), reduction="none").mean(dim=[1, 2, 3])
    loss_base = mse(model_base) - mse(refer_base)
    loss_pred = mse(model_pred) - mse(refer_pred)
    dpo = -F.logsigmoid(-BETA * (loss_base - loss_pred)).mean()
    prior = F.mse_loss(model_prior.float(), refer_prior.float(), reduction="mean")
    loss = dpo + LAMBDA * prior
    loss.backward()

    out = dict(batch, loss=loss.reshape(1), dpo=dpo.reshape(1), prior=prior.reshape(1),
               pair_context=pair_context, prior_context=prior_context)
    for name, p in unet.named_parameters():
        if "lora_" in name:
            key = name.replace(".default", "")
            out["grad.unet." + key] = p.grad
    save_file({k: v.detach().float().contiguous() for k, v in out.items()}, os.path.join(OUT, filename),
              metadata={"beta": str(BETA), "lambda": str(LAMBDA), "peft": __import__("peft").__version__,
                        "diffusers": __import__("diffusers").__version__})
    print(filename, "loss", loss.item(), "dpo", dpo.item(), "prior", prior.item(),
          "grads", sum(k.startswith("grad.") for k in out))

UNCONDITIONAL_LAMBDA = 20.0


def unconditional_step():
    """The prompted step of prompted-step.safetensors with the unconditional-preserving term,
    from the committed adapter and batch (nothing else is rewritten)."""
    from safetensors.torch import load_file
    prompted = load_file(os.path.join(OUT, "prompted-step.safetensors"))
    adapter = load_file(os.path.join(OUT, "adapter.safetensors"))
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE, safety_checker=None, requires_safety_checker=False)
    unet, scheduler = pipe.unet, DDPMScheduler.from_config(pipe.scheduler.config)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian",
                                target_modules=["attn1.to_k", "attn1.to_q", "attn1.to_v", "attn1.to_out.0"]))
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(adapter["unet." + name.replace(".default", "")])
    ids = pipe.tokenizer([""], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        empty = pipe.text_encoder(ids).last_hidden_state
    unsafe, safe, noise = prompted["unsafe"], prompted["safe"], prompted["noise"]
    timesteps = prompted["timesteps"].long()
    pair_context, prior_context = prompted["pair_context"], prompted["prior_context"]
    b = unsafe.shape[0]
    noisy = scheduler.add_noise(torch.cat([unsafe, safe]), noise.repeat(2, 1, 1, 1), timesteps)
    all_t = torch.cat([timesteps, torch.full((b,), 999)])
    pred = unet(torch.cat([noisy, noise]), all_t, torch.cat([pair_context, pair_context, prior_context])).sample
    free = unet(noisy, timesteps, empty.repeat(2 * b, 1, 1)).sample
    unet.disable_adapters()
    with torch.no_grad():
        ref = unet(torch.cat([noisy, noise]), all_t, torch.cat([pair_context, pair_context, prior_context])).sample
        ref_free = unet(noisy, timesteps, empty.repeat(2 * b, 1, 1)).sample
    unet.enable_adapters()
    model_pred, model_base, model_prior = pred.chunk(3)
    refer_pred, refer_base, refer_prior = ref.chunk(3)
    mse = lambda x: F.mse_loss(x, noise, reduction="none").mean(dim=[1, 2, 3])
    dpo = -F.logsigmoid(-BETA * ((mse(model_base) - mse(refer_base)) - (mse(model_pred) - mse(refer_pred)))).mean()
    prior = F.mse_loss(model_prior, refer_prior)
    free_unsafe, free_safe = free.chunk(2)
    ref_unsafe, ref_safe = ref_free.chunk(2)
    unconditional = (F.mse_loss(free_unsafe, ref_unsafe) + F.mse_loss(free_safe, ref_safe)) / 2
    loss = dpo + LAMBDA * prior + UNCONDITIONAL_LAMBDA * unconditional
    loss.backward()
    out = dict(prompted, loss=loss.reshape(1), dpo=dpo.reshape(1), prior=prior.reshape(1),
               unconditional=unconditional.reshape(1))
    out = {k: v for k, v in out.items() if not k.startswith("grad.")}
    for name, p in unet.named_parameters():
        if "lora_" in name:
            out["grad.unet." + name.replace(".default", "")] = p.grad
    save_file({k: v.detach().float().contiguous() for k, v in out.items()},
              os.path.join(OUT, "unconditional-step.safetensors"),
              metadata={"beta": str(BETA), "lambda": str(LAMBDA),
                        "unconditional_lambda": str(UNCONDITIONAL_LAMBDA)})
    print("unconditional-step.safetensors loss", loss.item(), "unconditional", unconditional.item())


DSPO_BETA, DSPO_LAMBDA = 0.8, 30.0


def dspo_step():
    """DSPO's step on the committed adapter and prompt-free batch, as huaishengzhu/DSPO's train.py
    (8b4e09b, l.1137-1169) computes it for SD 1.5: the winner (safe) half first, one timestep and
    noise per pair, inside = -0.5 beta (model_diff - ref_diff), the loss
    mean((model_pred_w - noise - beta (1 - sigmoid(inside)) (model_pred_w - ref_pred_w))^2), with
    no detach but the reference; plus DUO's output-preserving term, lambda times the MSE between
    the trained and reference predictions on pure noise at the last timestep. beta is 0.8, not the
    launcher's 0.001, so that sigmoid's path carries a gradient the test can see."""
    from safetensors.torch import load_file
    prompt_free = load_file(os.path.join(OUT, "step.safetensors"))
    adapter = load_file(os.path.join(OUT, "adapter.safetensors"))
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE, safety_checker=None, requires_safety_checker=False)
    unet, scheduler = pipe.unet, DDPMScheduler.from_config(pipe.scheduler.config)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian",
                                target_modules=["attn1.to_k", "attn1.to_q", "attn1.to_v", "attn1.to_out.0"]))
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(adapter["unet." + name.replace(".default", "")])
    ids = pipe.tokenizer([""], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        empty = pipe.text_encoder(ids).last_hidden_state
    unsafe, safe, noise = prompt_free["unsafe"], prompt_free["safe"], prompt_free["noise"]
    b = unsafe.shape[0]
    pair_t = prompt_free["timesteps"].long()[:b]
    timesteps = pair_t.repeat(2)
    noisy = scheduler.add_noise(torch.cat([safe, unsafe]), noise.repeat(2, 1, 1, 1), timesteps)
    context = empty.repeat(2 * b, 1, 1)
    last = torch.full((b,), 999)

    model_pred = unet(noisy, timesteps, context).sample
    model_prior = unet(noise, last, empty.repeat(b, 1, 1)).sample
    unet.disable_adapters()
    with torch.no_grad():
        ref_pred = unet(noisy, timesteps, context).sample
        ref_prior = unet(noise, last, empty.repeat(b, 1, 1)).sample
    unet.enable_adapters()
    target = noise.repeat(2, 1, 1, 1)
    model_diff_w, model_diff_l = (model_pred - target).chunk(2)
    model_diff = model_diff_w.pow(2).mean(dim=[1, 2, 3]) - model_diff_l.pow(2).mean(dim=[1, 2, 3])
    ref_losses_w, ref_losses_l = (ref_pred - target).pow(2).mean(dim=[1, 2, 3]).chunk(2)
    inside = -0.5 * DSPO_BETA * (model_diff - (ref_losses_w - ref_losses_l))
    pred2, _ = (model_pred - ref_pred).chunk(2)
    weight = DSPO_BETA * (1 - torch.sigmoid(inside))[:, None, None, None]
    dspo = (model_diff_w - weight * pred2).pow(2).mean(dim=[1, 2, 3]).mean()
    prior = F.mse_loss(model_prior, ref_prior)
    loss = dspo + DSPO_LAMBDA * prior
    loss.backward()
    out = {k: v for k, v in prompt_free.items() if k in ("unsafe", "safe", "noise")}
    out.update(timesteps=torch.cat([pair_t, pair_t]).float(), loss=loss.reshape(1), dspo=dspo.reshape(1),
               prior=prior.reshape(1), inside=inside)
    for name, p in unet.named_parameters():
        if "lora_" in name:
            out["grad.unet." + name.replace(".default", "")] = p.grad
    save_file({k: v.detach().float().contiguous() for k, v in out.items()},
              os.path.join(OUT, "dspo-step.safetensors"),
              metadata={"dspo_beta": str(DSPO_BETA), "lambda": str(DSPO_LAMBDA)})
    print("dspo-step.safetensors loss", loss.item(), "dspo", dspo.item(), "prior", prior.item(),
          "inside", inside.tolist())


if __name__ == "__main__":
    import sys
    if "--unconditional" in sys.argv:
        unconditional_step()
    elif "--dspo" in sys.argv:
        dspo_step()
    else:
        main()
