"""The PyTorch peer of `duo-bench unet-forward`: the FLOPs of one UNet forward pass as
PyTorch's FlopCounterMode counts them, and diffusers' own forward time on the same folder.

  tools/.venv-models/bin/python tools/peer_unet_forward.py UNET_DIR BATCH TEXT_TOKENS

The FLOPs are counted with diffusers' plain attention processor (its products are batched
matmuls, which the counter sees; the fused scaled-dot-product kernel it may not): the
convolutions, the linear layers and attention's two products, each multiply-add counted as 2.
The time is the best of 5 forward passes after a warm-up, 2 threads, diffusers' default
processor, at [BATCH, C, H, W] with BATCH texts of TEXT_TOKENS tokens and timestep 500.

Prints one line: `diffusers <FLOPs of one forward> <seconds of one forward>`.
"""

import sys
import time

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from torch.utils.flop_counter import FlopCounterMode

directory, batch, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
unet = UNet2DConditionModel.from_pretrained(directory).eval()
config = unet.config
sample = torch.randn(batch, config.in_channels, config.sample_size, config.sample_size,
                     generator=torch.Generator().manual_seed(1))
context = torch.randn(batch, tokens, config.cross_attention_dim,
                      generator=torch.Generator().manual_seed(2))
timesteps = torch.full((batch,), 500)

with torch.no_grad():
    default_processors = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    with FlopCounterMode(display=False) as counter:
        unet(sample, timesteps, encoder_hidden_states=context)
    flops = counter.get_total_flops()
    unet.set_attn_processor(default_processors)
    unet(sample, timesteps, encoder_hidden_states=context)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        unet(sample, timesteps, encoder_hidden_states=context)
        best = min(best, time.perf_counter() - start)
print(f"diffusers {flops} {best:.6f}")
