"""Fixture for duo's ESD loss: one ESD step in PyTorch, written as ESD's reference computes
its objective (rohitgandikota/erasing, train-scripts/train-esd.py: the frozen model's
unconditional and concept predictions e_0 and e_p, the trained model's concept prediction
e_n, and MSE(e_n, e_0 - negative_guidance * (e_p - e_0))), on the tiny pipeline folder of
tools/make_model_fixtures.py with the peft adapters of the DPO fixture (attn1, rank 4,
random A and B: Tests/UnlearningTests/Fixtures/dpo/adapter.safetensors). It checks the
objective at a given x_t (noised images, made the same way on both sides) with LoRA
adapters; ESD's own x_t, its trajectory and timestep draws, and its full-rank Adam update
are checked against the reference's code by tools/make_esd_reference_fixture.py.
  tools/.venv-models/bin/python tools/make_esd_fixture.py
Writes Tests/UnlearningTests/Fixtures/esd/step.safetensors: the images, noise, timesteps,
concept context, eta, the loss and the gradient of every adapter weight.
"""

import os

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline
from peft import LoraConfig
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(__file__)
PIPELINE = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures", "models", "pipeline")
ADAPTER = os.path.join(HERE, "..", "Tests", "UnlearningTests", "Fixtures", "dpo", "adapter.safetensors")
OUT = os.path.join(HERE, "..", "Tests", "UnlearningTests", "Fixtures", "esd")
ETA, RANK = 1.5, 4


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(21)
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE, safety_checker=None,
                                                   requires_safety_checker=False)
    unet, scheduler = pipe.unet, DDPMScheduler.from_config(pipe.scheduler.config)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian",
                                target_modules=["attn1.to_k", "attn1.to_q", "attn1.to_v",
                                                "attn1.to_out.0"]))
    weights = load_file(ADAPTER)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(weights["unet." + name.replace(".default", "")])
    ids = pipe.tokenizer([""], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        empty = pipe.text_encoder(ids).last_hidden_state
    concept = torch.randn(empty.shape, generator=g)  # the concept prompt's states
    b = 2
    x0 = torch.randn(b, 4, 8, 8, generator=g)
    noise = torch.randn(b, 4, 8, 8, generator=g)
    timesteps = torch.tensor([700, 40])
    noisy = scheduler.add_noise(x0, noise, timesteps)

    unet.disable_adapters()
    with torch.no_grad():
        e_0 = unet(noisy, timesteps, empty.repeat(b, 1, 1)).sample
        e_p = unet(noisy, timesteps, concept.repeat(b, 1, 1)).sample
    unet.enable_adapters()
    e_n = unet(noisy, timesteps, concept.repeat(b, 1, 1)).sample
    loss = F.mse_loss(e_n, e_0 - ETA * (e_p - e_0))
    loss.backward()
    out = {"x0": x0, "noise": noise, "timesteps": timesteps.float(), "concept": concept,
           "loss": loss.reshape(1),
           "mse_reference": F.mse_loss(e_p, noise).reshape(1)}
    for name, p in unet.named_parameters():
        if "lora_" in name:
            out["grad.unet." + name.replace(".default", "")] = p.grad
    save_file({k: v.detach().float().contiguous() for k, v in out.items()},
              os.path.join(OUT, "step.safetensors"), metadata={"eta": str(ETA)})
    print("loss", loss.item(), "grads", sum(k.startswith("grad.") for k in out))


if __name__ == "__main__":
    main()
