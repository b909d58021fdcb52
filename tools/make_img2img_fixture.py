"""Fixture for duo's image-to-image (SDEdit) pipeline: diffusers' StableDiffusionImg2ImgPipeline
on the tiny pipeline folder of tools/make_model_fixtures.py, with its two random draws (the VAE
posterior sample and the noise of add_noise) replaced by tensors we store, so that duo can
replay the same run.

  tools/.venv-models/bin/python tools/make_img2img_fixture.py

Writes Tests/DiffusionTests/Fixtures/models/img2img.safetensors (DDIM, as duo's latent-model
default before PNDM) and img2img_pndm.safetensors (the same run with Stable Diffusion 1.x's
PNDM config, Fixtures/schedulers/pndm/scheduler_config.json).
"""

import os

import torch
from diffusers import DDIMScheduler, PNDMScheduler, StableDiffusionImg2ImgPipeline
from diffusers.models.autoencoders import vae as vae_module
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(__file__), "..", "Tests", "DiffusionTests", "Fixtures", "models")
PROMPTS = ["a photo", "a red photo"]
NEGATIVE = ["a blue photo", "photo photo"]
STRENGTH, STEPS, GUIDANCE = 0.6, 10, 7.5


PNDM_CONFIG = os.path.join(ROOT, "..", "schedulers", "pndm")


def main():
    # As duo's latent-model scheduler: DDIM from the folder's config (steps_offset 1, no clipping).
    write(lambda config: DDIMScheduler.from_config(config), "img2img.safetensors")
    write(lambda _: PNDMScheduler.from_pretrained(PNDM_CONFIG), "img2img_pndm.safetensors")


def write(make_scheduler, filename):
    g = torch.Generator().manual_seed(7)
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        os.path.join(ROOT, "pipeline"), safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = make_scheduler(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    image = torch.rand(2, 3, 16, 16, generator=g)  # [0, 1]; the pipeline maps it to [-1, 1]
    posterior_noise = torch.randn(2, 4, 8, 8, generator=g)
    noise = torch.randn(2, 4, 8, 8, generator=g)
    draws = [posterior_noise, noise]

    def replay(shape, **_):
        value = draws.pop(0)
        assert tuple(value.shape) == tuple(shape), (value.shape, shape)
        return value.clone()

    vae_module.randn_tensor = replay
    img2img.randn_tensor = replay
    with torch.no_grad():
        out = pipe(prompt=PROMPTS, negative_prompt=NEGATIVE, image=image, strength=STRENGTH,
                   num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="pt").images
    assert not draws, "the pipeline drew fewer random tensors than expected"
    tensors = {"image": image * 2 - 1, "posterior_noise": posterior_noise, "noise": noise,
               "output": out.float()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(ROOT, filename),
              metadata={"prompts": "\n".join(PROMPTS), "negative_prompts": "\n".join(NEGATIVE),
                        "strength": str(STRENGTH), "steps": str(STEPS), "guidance": str(GUIDANCE),
                        "diffusers": __import__("diffusers").__version__})
    print("output range", out.min().item(), out.max().item(), "std", out.std().item())


if __name__ == "__main__":
    main()
