"""The PyTorch peer of `duo-bench sd-step`: DUO's step (naver-ai/DUO, train/unlearn-sd.py, as
tools/peer_duo_step.py computes it) on a full-size SD 1.x pipeline folder
(tools/make_sd_pipeline.py), with peft LoRA rank 32 / alpha 32 on attn1 to_q/to_k/to_v/to_out.0,
batch 4 pairs of 64x64 latents (12 trained UNet rows: unsafe, safe and the output-preserving
term's, and the same 12 without adapters), diffusers' gradient checkpointing, the UNet calls
under torch.autocast("cpu", dtype=torch.bfloat16), AdamW and gradient clipping in float32,
2 threads (with `fp32` as the third argument, float32 without autocast: PyTorch's fastest
path on a CPU without AVX512-BF16). duo's step also samples the pairs' latents from their VAE posteriors; here they
are drawn directly (a negligible part of a step).

  tools/.venv-models/bin/python tools/peer_sd_duo_step.py MODEL_DIR [STEPS] [fp32|bf16]

Prints `step <i> <seconds>` per step, then `peak <bytes>` (the process's maximum RSS).
"""

import resource
import sys
import time

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from peft import LoraConfig
from transformers import CLIPTextModel, CLIPTokenizer

model = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
precision = sys.argv[3] if len(sys.argv) > 3 else "bf16"
if precision not in ("fp32", "bf16"):
    sys.exit(f"peer_sd_duo_step.py: precision {precision!r}: expected fp32 or bf16")
torch.set_num_threads(2)
torch.manual_seed(0)
unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float32)
tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=torch.float32)
scheduler = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
unet.requires_grad_(False)
unet.enable_gradient_checkpointing()
unet.train()
unet.add_adapter(LoraConfig(r=32, lora_alpha=32, init_lora_weights="gaussian",
                            target_modules=["attn1.to_k", "attn1.to_q", "attn1.to_v",
                                            "attn1.to_out.0"]))
params = [p for p in unet.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2)
with torch.no_grad():
    ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids
    empty = encoder(ids).last_hidden_state
b, beta, lam = 4, 500.0, 5e6
latents = torch.randn(2 * 16, 4, 64, 64) * 0.18215


def step():
    index = torch.randint(0, 16, (b,))
    model_input = torch.cat([latents[16 + index], latents[index]])  # unsafe, safe
    noise = torch.randn_like(model_input[:b]).repeat(2, 1, 1, 1)
    timesteps = torch.randint(0, 750, (2 * b,))
    noisy = torch.cat([scheduler.add_noise(model_input, noise, timesteps), noise[:b]])
    all_t = torch.cat([timesteps, torch.full((b,), 999)])
    context = empty.repeat(3 * b, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        pred = unet(noisy, all_t, context).sample.float()
        with torch.no_grad():
            unet.disable_adapters()
            ref = unet(noisy, all_t, context).sample.float()
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


for i in range(steps):
    start = time.perf_counter()
    step()
    print(f"step {i + 1} {time.perf_counter() - start:.1f}", flush=True)
print(f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}")
