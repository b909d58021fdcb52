"""The PyTorch peer of `duo-bench sd-unet`: diffusers' UNet2DConditionModel from the same
fp16 folder (tools/make_sd_unet.py), widened to fp32, forwards at 64x64 latents, batch 2,
2 threads: fp32, and bf16 autocast (torch.autocast("cpu", dtype=torch.bfloat16)), each the
best of two after a warm-up. Prints `diffusers load <s> forward <s> forward_bf16 <s>`.

  tools/.venv-models/bin/python tools/peer_sd_unet.py [DIR]   # default .build/sd-unet
"""

import os
import sys
import time

import torch
from diffusers import UNet2DConditionModel

directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..",
                                                                  ".build", "sd-unet")
torch.set_num_threads(2)
start = time.perf_counter()
unet = UNet2DConditionModel.from_pretrained(directory, torch_dtype=torch.float32).eval()
load = time.perf_counter() - start
g = torch.Generator().manual_seed(1)
sample = torch.randn(2, 4, 64, 64, generator=g)
context = torch.randn(2, 77, 768, generator=g)


def best_of_two(autocast):
    """Seconds of the faster of two forwards after a warm-up one."""
    times = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for _ in range(3):
            start = time.perf_counter()
            unet(sample, torch.tensor([500, 500]), encoder_hidden_states=context)
            times.append(time.perf_counter() - start)
    return min(times[1:])


forward = best_of_two(False)
forward_bf16 = best_of_two(True)
print(f"diffusers load {load:.2f} forward {forward:.2f} forward_bf16 {forward_bf16:.2f}")
