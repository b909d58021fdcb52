"""The PyTorch peer of one `duo unlearn` step for `make bench`: DUO's step as its official code
computes it (naver-ai/DUO, train/unlearn-sd.py), with peft LoRA rank 32 / alpha 32 on attn1
to_q/to_k/to_v/to_out.0 (and, with `convs` in TARGETS, the ResNet blocks' conv1/conv2), AdamW
(weight decay 1e-2), gradient clipping 1.0, batch 4 pairs, on the same world model folder,
2 threads. The learning rate does not change the time of a step.

  tools/.venv-models/bin/python tools/peer_duo_step.py MODEL_DIR STEPS [TARGETS]

TARGETS: comma-separated, of self-attention and convs (default self-attention).

Prints one line: `diffusers <median seconds per step> <peak resident bytes>`.
"""

import resource
import sys
import time

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from peft import LoraConfig
from transformers import CLIPTextModel, CLIPTokenizer

model, steps = sys.argv[1], int(sys.argv[2])
targets = sys.argv[3].split(",") if len(sys.argv) > 3 else ["self-attention"]
torch.set_num_threads(2)
torch.manual_seed(0)
unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet")
tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder")
scheduler = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
unet.requires_grad_(False)
modules = {"self-attention": ["attn1.to_k", "attn1.to_q", "attn1.to_v", "attn1.to_out.0"],
           "convs": ["conv1", "conv2"]}  # the ResNet blocks' convs: duo's LoRATarget.convs
unet.add_adapter(LoraConfig(r=32, lora_alpha=32, init_lora_weights="gaussian",
                            target_modules=sum((modules[t] for t in targets), [])))
params = [p for p in unet.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(params, lr=6e-5, weight_decay=1e-2)
with torch.no_grad():
    ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    empty = encoder(ids).last_hidden_state
size, b, beta, lam = unet.config.sample_size, 4, 500.0, 5e6
pairs = torch.rand(2 * 16, 3, size, size) * 2 - 1


def step():
    index = torch.randint(0, 16, (b,))
    model_input = torch.cat([pairs[16 + index], pairs[index]])  # unsafe, safe
    noise = torch.randn_like(model_input[:b]).repeat(2, 1, 1, 1)
    timesteps = torch.randint(0, 750, (2 * b,))
    noisy = torch.cat([scheduler.add_noise(model_input, noise, timesteps), noise[:b]])
    all_t = torch.cat([timesteps, torch.full((b,), 999)])
    context = empty.repeat(3 * b, 1, 1)
    pred = unet(noisy, all_t, context).sample
    with torch.no_grad():
        unet.disable_adapters()
        ref = unet(noisy, all_t, context).sample
        unet.enable_adapters()
    p_unsafe, p_safe, p_prior = pred.chunk(3)
    r_unsafe, r_safe, r_prior = ref.chunk(3)
    mse = lambda x: F.mse_loss(x, noise[:b], reduction="none").mean(dim=[1, 2, 3])
    diff = (mse(p_safe) - mse(r_safe)) - (mse(p_unsafe) - mse(r_unsafe))
    loss = -F.logsigmoid(-beta * diff).mean() + lam * F.mse_loss(p_prior, r_prior)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()


times = []
for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
times = sorted(times[2:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(f"diffusers {times[len(times) // 2]:.4f} {peak}")
