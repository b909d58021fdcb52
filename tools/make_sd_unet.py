"""Writes a randomly initialised UNet with the full Stable Diffusion 1.x configuration,
in fp16 safetensors, for `make bench` (about 1.7 GB; never committed, never in CI).

  tools/.venv-models/bin/python tools/make_sd_unet.py [OUT_DIR]   # default .build/sd-unet
"""

import os
import sys

import torch
from diffusers import UNet2DConditionModel

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".build",
                                                            "sd-unet")
torch.manual_seed(0)
# The configuration of runwayml/stable-diffusion-v1-5's unet/config.json.
unet = UNet2DConditionModel(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
unet.half().save_pretrained(out, safe_serialization=True)
print(out, sum(p.numel() for p in unet.parameters()), "parameters")
