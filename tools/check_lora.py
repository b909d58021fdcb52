"""Checks a LoRA adapter written by `duo unlearn` against diffusers: `load_lora_weights` accepts
it, and sampling one prompt from the same latents with the adapter gives duo's image (`duo sample
--lora`) within 2/255 (issue 6, acceptance 5). Never in CI (needs torch, diffusers, peft).

  tools/.venv-models/bin/python tools/check_lora.py MODEL_DIR ADAPTER [DUO_BINARY]

MODEL_DIR is a world model folder (the pixel-space embedded default: the pipeline gets an
identity VAE, tools/pixel_space.py). The pipeline's own __call__ would switch the scheduler's
x0 clipping off (StableDiffusionPipeline does for every folder); the world model keeps it, so
sampling runs the pipeline's components in the loop of tools/check_world_model.py. Also checks
that the adapter changes the image. Run it on a trained model (see check_world_model.py).
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from pixel_space import components  # noqa: E402

model, adapter = sys.argv[1], sys.argv[2]
duo = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", ".build", "release", "duo")
prompt, steps, guidance = "a big striped red circle in the middle on a dark background", 20, 7.5

pipe = StableDiffusionPipeline(**components(model))
pipe.set_progress_bar_config(disable=True)
size = pipe.unet.config.sample_size
latents = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(5))


scheduler = DDIMScheduler.from_pretrained(model, subfolder="scheduler")


def encode(text):
    ids = pipe.tokenizer(text, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    return pipe.text_encoder(ids).last_hidden_state


def diffusers_image():
    scheduler.set_timesteps(steps)
    with torch.no_grad():
        context = torch.cat([encode(""), encode(prompt)])
        x = latents.clone()
        for t in scheduler.timesteps:
            noise = pipe.unet(torch.cat([x, x]), t, encoder_hidden_states=context).sample
            uncond, cond = noise.chunk(2)
            x = scheduler.step(uncond + guidance * (cond - uncond), t, x).prev_sample
    return ((x / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


base = diffusers_image()
pipe.load_lora_weights(adapter)
adapted = diffusers_image()

with tempfile.TemporaryDirectory() as tmp:
    save_file({"latents": latents.contiguous()}, os.path.join(tmp, "latents.safetensors"))
    out = os.path.join(tmp, "duo.png")
    subprocess.run([duo, "sample", "--model", model, "--scheduler", "ddim", "--lora", adapter, "--prompt", prompt, "--steps", str(steps),
                    "--guidance", str(guidance), "--latents", os.path.join(tmp, "latents.safetensors"),
                    "--out", out], check=True, capture_output=True)
    ours = np.asarray(Image.open(out).convert("RGB"))

difference = np.abs(ours.astype(int) - adapted.astype(int))
effect = np.abs(base.astype(int) - adapted.astype(int)).max()
beyond = int((difference > 2).sum())
print(f"{adapter}: diffusers with the adapter vs duo sample --lora: max difference {difference.max()}/255, "
      f"{beyond} of {difference.size} values beyond 2/255; the adapter itself changes the image by up to {effect}/255")
sys.exit(0 if beyond <= 5 and effect > 2 else 1)
