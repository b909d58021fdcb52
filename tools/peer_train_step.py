"""The PyTorch peer of `duo-bench train`: the same pixel-space UNet configuration in
diffusers, one training step (forward, backward, AdamW) at 32x32, batch 32, 2 threads.
Prints `diffusers <seconds per step>` (best of 5 after a warm-up).

  tools/.venv-models/bin/python tools/peer_train_step.py
"""

import time

import torch
from diffusers import UNet2DConditionModel

torch.set_num_threads(2)
torch.manual_seed(0)
unet = UNet2DConditionModel(
    sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
    block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=64, attention_head_dim=4, norm_num_groups=8)
optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
x = torch.randn(32, 3, 32, 32)
context = torch.randn(32, 16, 64)
timesteps = torch.arange(32) * 31


def step():
    loss = ((unet(x, timesteps, encoder_hidden_states=context).sample - x) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


step()
best = float("inf")
for _ in range(5):
    start = time.perf_counter()
    step()
    best = min(best, time.perf_counter() - start)
print(f"diffusers {best:.4f}", sum(p.numel() for p in unet.parameters()), "parameters")
