"""Fixture for the white-box attacks' objective (UnlearnDiffAtk, Concept Inversion): the
attacked model's own diffusion loss on images that show the concept, as UnlearnDiffAtk's
reference computes it (OPTML-Group/Diffusion-MU-Attack, src/attackers/text_grad_.py: MSE
between the UNet's noise prediction on the noised image and the noise, back-propagated into
the text conditioning), on the tiny pipeline folder with the DPO fixture's adapter merged.
  tools/.venv-models/bin/python tools/make_attack_fixture.py
Writes Tests/EvaluationTests/Fixtures/attack/objective.safetensors: images, noise, timesteps,
the conditioning, the loss and its gradient with respect to the conditioning.
"""

import os

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline
from safetensors.torch import save_file

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "..", "Tests")
PIPELINE = os.path.join(FIXTURES, "DiffusionTests", "Fixtures", "models", "pipeline")
ADAPTER = os.path.join(FIXTURES, "UnlearningTests", "Fixtures", "dpo", "adapter.safetensors")
OUT = os.path.join(FIXTURES, "EvaluationTests", "Fixtures", "attack")


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(31)
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.load_lora_weights(ADAPTER)
    pipe.fuse_lora()
    unet, scheduler = pipe.unet, DDPMScheduler.from_config(pipe.scheduler.config)
    unet.requires_grad_(False)
    x0 = torch.randn(2, 4, 8, 8, generator=g)
    noise = torch.randn(2, 4, 8, 8, generator=g)
    timesteps = torch.tensor([600, 100])
    context = torch.randn(2, 8, unet.config.cross_attention_dim, generator=g).requires_grad_(True)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    loss = F.mse_loss(unet(noisy, timesteps, context).sample, noise)
    loss.backward()
    save_file({"x0": x0, "noise": noise, "timesteps": timesteps.float(),
               "context": context.detach(), "loss": loss.detach().reshape(1),
               "grad.context": context.grad.contiguous()},
              os.path.join(OUT, "objective.safetensors"))
    print("loss", loss.item(), "grad norm", context.grad.norm().item())


if __name__ == "__main__":
    main()
