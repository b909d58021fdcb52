"""The PyTorch peer for `make bench`: diffusers' StableDiffusionPipeline sampling on CPU with
2 threads, on the same tiny model folder duo samples in its benchmark.

  tools/.venv-models/bin/python tools/peer_sampling.py MODEL_DIR STEPS SIZE REPEATS

Prints one line: `diffusers <seconds per image>` (best of REPEATS after a warm-up).
"""

import sys
import time

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

model, steps, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(2)
pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None,
                                               requires_safety_checker=False)
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
pipe.set_progress_bar_config(disable=True)
encoder = pipe.text_encoder
with torch.no_grad():
    cond = encoder(torch.tensor([[998, 7, 8, 9, 999, 999, 999, 999]])).last_hidden_state
    uncond = encoder(torch.tensor([[998] + [999] * 7])).last_hidden_state
latent_size = size // pipe.vae_scale_factor
latents = torch.randn(1, pipe.unet.config.in_channels, latent_size, latent_size,
                      generator=torch.Generator().manual_seed(0))


def run():
    pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, latents=latents.clone(),
         num_inference_steps=steps, guidance_scale=7.5, height=size, width=size, output_type="np")


run()
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - start)
print(f"diffusers {best:.4f}")
