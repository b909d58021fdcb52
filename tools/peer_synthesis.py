"""The PyTorch peer of `duo synthesize` for `make bench`: the same SDEdit pairs in diffusers'
pipelines on CPU with 2 threads, on the same world model folder. StableDiffusionPipeline draws
the unsafe images, StableDiffusionImg2ImgPipeline edits them (strength, guidance, steps as duo,
the folder's DDPM sampler, the unsafe prompt as negative prompt). The world model works in pixel space, so both
pipelines get an identity "VAE" (scale factor 1): the work timed is the text encoder, the UNet
and the scheduler, as in duo.

  tools/.venv-models/bin/python tools/peer_synthesis.py MODEL_DIR PAIRS STEPS STRENGTH

Prints one line: `diffusers <seconds for PAIRS pairs>` (one batch, after a warm-up).
"""

import sys
import time

import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

from pixel_space import components

model, pairs, steps, strength = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
torch.set_num_threads(2)


parts = components(model)
draw = StableDiffusionPipeline(**parts)
edit = StableDiffusionImg2ImgPipeline(**parts)
for pipe in (draw, edit):
    pipe.set_progress_bar_config(disable=True)
size = parts["unet"].config.sample_size
unsafe = [f"a small striped {c} circle on the left on a dark background"
          for c in ["red", "blue", "green", "yellow"]] * (pairs // 4 + 1)
safe = [p.replace("striped ", "") for p in unsafe]
unsafe, safe = unsafe[:pairs], safe[:pairs]


def run():
    g = torch.Generator().manual_seed(0)
    images = draw(prompt=unsafe, num_inference_steps=steps, guidance_scale=7.5, height=size,
                  width=size, generator=g, output_type="pt").images
    edit(prompt=safe, negative_prompt=unsafe, image=images, strength=strength,
         num_inference_steps=steps, guidance_scale=7.5, generator=g, output_type="pt")


with torch.no_grad():
    run()
    start = time.perf_counter()
    run()
print(f"diffusers {time.perf_counter() - start:.4f}")
