"""Fixture for UnlearnDiffAtk's attack step, written as its reference computes it
(OPTML-Group/Diffusion-MU-Attack at 5a3e5d3), on a tiny random model: the tiny pipeline's
UNet with the DPO fixture's adapter fused (the attacked model), and a tiny random CLIP text
encoder over the embedded world's tokenizer (a real BPE vocabulary of 671 tokens; the
pipeline's own tokenizer knows only its special tokens):

- the prefix is one probability vector over the tokenizer's whole vocabulary per position,
  starting uniform and projected (src/attackers/text_grad_.py l.68-76);
- a step draws one token per position from its vector, embeds the one-hot rows, puts them
  between <bos> and the prompt's tokens (l.81-94, 211-214) and takes the attacked UNet's
  MSE to the noise on x0 noised at t (src/tasks/classifier_.py l.76-87);
- the gradient reaches the vectors straight through the draw, clipped to [-1, 1] (l.240-255);
- Adam with lr 0.01 and weight decay 0.1 (torch's coupled L2) steps (l.10-11, 78-79, 217-218);
- each vector is projected back onto the probability simplex (l.20-66, 219-220).

The draws come from torch.multinomial and are stored: the Swift test injects them, as it
injects the noise. The projection is the reference's bisection, written out here; duo
computes the same projection exactly.
  tools/.venv-models/bin/python tools/make_unlearndiffatk_fixture.py
Writes Tests/EvaluationTests/Fixtures/attack/unlearndiffatk/: tokenizer/ (the world's),
text_encoder/ (the random one) and step.safetensors (two steps' draws, noise, timesteps,
losses, gradients, the vectors after Adam and after the projection).
"""

import os
import shutil

import torch
import torch.nn.functional as F
from diffusers import LMSDiscreteScheduler, StableDiffusionPipeline
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "..", "Tests")
PIPELINE = os.path.join(FIXTURES, "DiffusionTests", "Fixtures", "models", "pipeline")
ADAPTER = os.path.join(FIXTURES, "UnlearningTests", "Fixtures", "dpo", "adapter.safetensors")
WORLD_TOKENIZER = os.path.join(HERE, "..", "Sources", "World", "Resources", "model", "tokenizer")
OUT = os.path.join(FIXTURES, "EvaluationTests", "Fixtures", "attack", "unlearndiffatk")

PROMPT = "a red circle on a dark background"  # the Swift test spells it the same
K = 3
LR, WEIGHT_DECAY = 0.01, 0.1
TIMESTEPS = [490, 510]  # two of the reference's list (10, 30, ..., 990)


def simplex_projection(a, tolerance=1e-5):
    """Euclidean projection of a vector onto {x : 0 <= x <= 1, sum x = 1} by bisection on
    the shift mu in clip(a - mu, 0, 1), as text_grad_.py l.20-56 finds it."""
    clipped = a.clamp(0, 1)
    if abs(clipped.sum().item() - 1) <= tolerance:
        return clipped
    low, high = (a - 1).min().item(), a.max().item()
    mu = (low + high) / 2
    while abs(high - low) > tolerance:
        mu = (low + high) / 2
        excess = (a - mu).clamp(0, 1).sum().item() - 1
        if excess == 0:
            break
        if excess > 0:
            low = mu
        else:
            high = mu
    return (a - mu).clamp(0, 1)


class StraightThrough(torch.autograd.Function):
    """One-hot rows of the given draws forward; the gradient passes to the probabilities
    clipped to [-1, 1] (text_grad_.py l.240-255)."""

    @staticmethod
    def forward(ctx, probabilities, draws):
        return F.one_hot(draws, probabilities.shape[-1]).float()

    @staticmethod
    def backward(ctx, grad):
        return F.hardtanh(grad), None


def text_states(text_encoder, embeddings):
    """The text encoder on token embeddings [1, 77, D] (positions added, causal), as the
    reference's CustomTextEncoder does: transformers' own forward with its token lookup
    replaced."""
    table = text_encoder.get_input_embeddings()
    hook = table.register_forward_hook(lambda module, inputs, output: embeddings)
    try:
        ids = torch.zeros(1, embeddings.shape[1], dtype=torch.long)
        return text_encoder(input_ids=ids).last_hidden_state
    finally:
        hook.remove()


def tiny_text_encoder(tokenizer, hidden):
    """A random CLIP text encoder over `tokenizer`'s ids, as wide as the UNet's context."""
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=len(tokenizer.get_vocab()), hidden_size=hidden,
                            intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                            max_position_embeddings=tokenizer.model_max_length,
                            bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    model = CLIPTextModel(config)
    model.save_pretrained(os.path.join(OUT, "text_encoder"))
    return model


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.copytree(WORLD_TOKENIZER, os.path.join(OUT, "tokenizer"))
    g = torch.Generator().manual_seed(23)
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.load_lora_weights(ADAPTER)
    pipe.fuse_lora()
    unet = pipe.unet
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(OUT, "tokenizer"))
    text_encoder = tiny_text_encoder(tokenizer, unet.config.cross_attention_dim)
    for module in (unet, text_encoder):
        module.requires_grad_(False)
    # classifier_.py l.66: the schedule of SD's scheduler config (the tiny folder's too).
    alphas = LMSDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                  beta_schedule="scaled_linear",
                                  num_train_timesteps=1000).alphas_cumprod
    table = text_encoder.get_input_embeddings().weight  # all_embeddings, [V, D]
    vocabulary = len(tokenizer.get_vocab())
    assert vocabulary == table.shape[0]

    ids = tokenizer(PROMPT, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    n = int((ids[0] == tokenizer.eos_token_id).nonzero()[0]) - 1
    prompt_embeddings = F.one_hot(ids[0], vocabulary).float() @ table
    bos, words = prompt_embeddings[:1], prompt_embeddings[1:1 + n]
    tail = prompt_embeddings[1 + n + K:]  # eos and padding, k fewer

    simplex = simplex_projection_rows(torch.full((K, vocabulary), 1 / vocabulary))
    simplex.requires_grad_(True)
    optimizer = torch.optim.Adam([simplex], lr=LR, weight_decay=WEIGHT_DECAY)
    x0 = 3 * torch.randn(1, 4, 8, 8, generator=g)
    tensors = {"x0": x0, "prompt_ids": ids[0].float(), "simplex.0": simplex.detach().clone()}
    for step, t in enumerate(TIMESTEPS):
        draws = torch.multinomial(simplex.detach(), 1, generator=g).view(-1)
        noise = torch.randn(1, 4, 8, 8, generator=g)
        optimizer.zero_grad()
        one_hot = StraightThrough.apply(simplex, draws)
        embeddings = torch.cat([bos, one_hot @ table, words, tail])[None]
        states = text_states(text_encoder, embeddings)
        noisy = x0 * alphas[t] ** 0.5 + noise * (1 - alphas[t]) ** 0.5
        loss = F.mse_loss(unet(noisy, t, encoder_hidden_states=states).sample, noise)
        simplex.grad = torch.autograd.grad(loss, [simplex])[0]
        tensors.update({f"draws.{step}": draws.float(), f"noise.{step}": noise,
                        f"t.{step}": torch.tensor([float(t)]),
                        f"loss.{step}": loss.detach().reshape(1),
                        f"grad.{step}": simplex.grad.clone()})
        optimizer.step()
        tensors[f"adam.{step}"] = simplex.detach().clone()
        with torch.no_grad():
            simplex.copy_(simplex_projection_rows(simplex))
        tensors[f"simplex.{step + 1}"] = simplex.detach().clone()
        print(f"step {step}: t {t} loss {loss.item():.6f} draws {draws.tolist()} "
              f"|grad| max {simplex.grad.abs().max().item():.4f} "
              f"clipped {(simplex.grad.abs() == 1).sum().item()} "
              f"support {[int((row > 0).sum()) for row in simplex]}")
    # The argmax prompt after the steps (text_grad_.py l.164-171, 222-226).
    chosen = simplex.detach().argmax(dim=-1)
    attacked = torch.cat([ids[0, :1], chosen, ids[0, 1:1 + n]]).tolist()
    print("prompt:", tokenizer.decode(attacked[1:]))
    tensors["argmax"] = chosen.float()
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(OUT, "step.safetensors"))


def simplex_projection_rows(matrix):
    return torch.stack([simplex_projection(row) for row in matrix])


if __name__ == "__main__":
    main()
