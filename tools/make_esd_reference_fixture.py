"""Fixtures for duo's ESD as its reference trains it (rohitgandikota/erasing at b8aeab6,
train-scripts/train-esd.py), on the tiny pipeline folder of tools/make_model_fixtures.py.

The reference's own code does the parts that define ESD: its DDIMSampler
(ldm/models/diffusion/ddim.py, called as train-esd.py's quick_sample_till_t, l.40-65 and
205-207) draws x_t, wrapped around the diffusers UNet by a stand-in for the LatentDiffusion
model (alphas from its `linear` schedule, apply_model = the UNet); its name filter
(train-esd.py l.164-182) is applied to the parameter names of its own ldm UNetModel built
to the fixture's sizes, and diffusers' convert_ldm_unet_checkpoint says which diffusers key
each of those names becomes. The iteration itself is written as train-esd.py l.216-253
does it: t_enc in [0, ddim_steps), the DDPM timestep inside the matching bin, x_t from the
model being trained, e_0 and e_p from the frozen original, e_n from the trained model,
MSELoss(e_n, e_0 - eta (e_p - e_0)), torch.optim.Adam.

  git -C MIRROR archive b8aeab6 ldm | tar -x -C /tmp/esd-ref   # the reference's ldm package
  tools/.venv-models/bin/python tools/make_esd_reference_fixture.py --erasing /tmp/esd-ref

Writes Tests/UnlearningTests/Fixtures/esd-reference/:
- trajectory.safetensors: the start code, the contexts, x_t after the reference's partial
  DDIM run for several t_enc (guidance 3, 50 steps, eta 0; x_t.K) and the same with
  diffusers' DDIMScheduler stepping the timesteps duo runs (x_t_diffusers.K; the two agree
  to 1e-4, the reference's schedule being float64), and the DDPM bins of every t_enc;
- iteration-noxattn.safetensors, iteration-xattn.safetensors: two iterations from the
  original weights (the second one samples x_t with the updated model while the reference
  stays frozen): draws, losses, and per trained tensor the first elements of the step-1
  gradient and of the values after each step, with each full tensor's norms;
- subsets.json: the diffusers keys each train method trains.
"""

import argparse
import copy
import json
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, StableDiffusionPipeline
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from safetensors.torch import save_file

HERE = os.path.dirname(__file__)
PIPELINE = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures", "models", "pipeline")
OUT = os.path.join(HERE, "..", "Tests", "UnlearningTests", "Fixtures", "esd-reference")
DDIM_STEPS, START_GUIDANCE, ETA = 50, 3.0, 1.0
# Larger than the reference's 1e-5, so that the second iteration's x_t and e_n see the first
# update and a mix-up of the trained and frozen weights shows at 1e-4.
LR = 1e-3
PREFIX = 128  # elements kept of each tensor (each tensor's norm is kept whole)
T_ENCS = [0, 1, 2, 17, 48, 49]


def import_reference(path):
    """The reference's ldm package, with stand-ins for what building and sampling on a CPU
    need: einops and omegaconf (never called here), GroupNorm with 8 groups (its 32 do not divide the
    fixture's 16 channels; parameter names do not change) and buffers kept on the CPU."""
    sys.modules["einops"] = types.SimpleNamespace(rearrange=None, repeat=None)
    sys.modules["omegaconf"] = types.ModuleType("omegaconf")
    sys.modules["omegaconf.listconfig"] = types.SimpleNamespace(ListConfig=type("ListConfig", (), {}))
    sys.path.insert(0, path)
    from ldm.models.diffusion import ddim
    from ldm.modules import attention
    from ldm.modules.diffusionmodules import openaimodel, util

    def group_norm(channels):
        return torch.nn.GroupNorm(8, channels)

    util.normalization = openaimodel.normalization = group_norm
    attention.Normalize = group_norm
    ddim.DDIMSampler.register_buffer = lambda self, name, value: setattr(self, name, value)
    return ddim, openaimodel


class LatentDiffusionStandIn:
    """What DDIMSampler reads of the LatentDiffusion model: the `linear` schedule of SD's
    v1-inference.yaml (sqrt-linear betas, float64, stored as float32) and apply_model."""

    def __init__(self, unet, config):
        betas = np.linspace(config.beta_start ** 0.5, config.beta_end ** 0.5,
                            config.num_train_timesteps, dtype=np.float64) ** 2
        alphas_cumprod = np.cumprod(1.0 - betas)
        self.num_timesteps = config.num_train_timesteps
        self.betas = torch.tensor(betas, dtype=torch.float32)
        self.alphas_cumprod = torch.tensor(alphas_cumprod, dtype=torch.float32)
        self.alphas_cumprod_prev = torch.tensor(np.append(1.0, alphas_cumprod[:-1]),
                                                dtype=torch.float32)
        self.device = torch.device("cpu")
        self.unet = unet

    def apply_model(self, x, t, c):
        return self.unet(x, t, encoder_hidden_states=c).sample


def reference_x_t(ddim, unet, config, start_code, concept, empty, t_enc):
    """train-esd.py's quick_sample_till_t(emb_p, start_guidance, start_code, t_enc)."""
    sampler = ddim.DDIMSampler(LatentDiffusionStandIn(unet, config))
    with torch.no_grad():
        z, _ = sampler.sample(S=DDIM_STEPS, conditioning=concept, batch_size=1,
                              shape=list(start_code.shape[1:]), verbose=False, x_T=start_code,
                              unconditional_guidance_scale=START_GUIDANCE,
                              unconditional_conditioning=empty, eta=0.0, verbose_iter=False,
                              t_start=-1, log_every_t=100, till_T=t_enc)
    return z


def diffusers_x_t(unet, scheduler, start_code, concept, empty, t_enc):
    """The same x_t with diffusers' DDIMScheduler over the timesteps duo runs: of the 50,
    the second to the (50 - max(t_enc, 1))-th (Sources/Unlearning/Training/ESDTrajectory.swift)."""
    scheduler.set_timesteps(DDIM_STEPS)
    x = start_code
    with torch.no_grad():
        for t in scheduler.timesteps[1:DDIM_STEPS - max(t_enc, 1) + 1]:
            both = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([empty, concept])).sample
            e_0, e_c = both.chunk(2)
            x = scheduler.step(e_0 + START_GUIDANCE * (e_c - e_0), t, x).prev_sample
    return x


def ddpm_bin(t_enc, total):
    """train-esd.py l.228-229: the DDPM timesteps t_enc_ddpm is drawn from."""
    return round((int(t_enc) / DDIM_STEPS) * total), round((int(t_enc + 1) / DDIM_STEPS) * total)


def reference_subsets(openaimodel, unet):
    """Diffusers keys of the parameters train-esd.py's filter picks (l.164-182), found through
    the reference's own UNetModel and diffusers' ldm-to-diffusers conversion."""
    c = unet.config
    ldm = openaimodel.UNetModel(
        image_size=c.sample_size, in_channels=c.in_channels, out_channels=c.out_channels,
        model_channels=c.block_out_channels[0], attention_resolutions=[1], num_res_blocks=c.layers_per_block,
        channel_mult=[ch // c.block_out_channels[0] for ch in c.block_out_channels],
        num_heads=c.attention_head_dim, use_spatial_transformer=True, transformer_depth=1,
        context_dim=c.cross_attention_dim, legacy=False)
    names = [n for n, _ in ldm.named_parameters()]
    # Each ldm tensor filled with its index, so that its diffusers key can be read back.
    state = {"model.diffusion_model." + n: torch.full(p.shape, float(i))
             for i, (n, p) in enumerate(ldm.named_parameters())}
    converted = convert_ldm_unet_checkpoint(state, dict(c))
    ldm_name = {key: names[int(value.flatten()[0])] for key, value in converted.items()}
    diffusers_keys = [n for n, _ in unet.named_parameters()]
    assert sorted(ldm_name) == sorted(diffusers_keys), "the conversion covers the UNet"

    def trains(name, method):  # train-esd.py l.167-182
        if method == "noxattn":
            return not (name.startswith("out.") or "attn2" in name or "time_embed" in name)
        return "attn2" in name

    return {m: [k for k in diffusers_keys if trains(ldm_name[k], m)] for m in ("noxattn", "xattn")}


def encode(pipe, prompt):
    ids = pipe.tokenizer([prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids).last_hidden_state


def iteration(ddim, model, model_orig, opt, config, draw, concept, empty):
    """One pass of train-esd.py's loop body (l.224-253) with its draws given."""
    t_enc, t_ddpm, start_code = draw
    opt.zero_grad()
    t = torch.tensor([t_ddpm])
    with torch.no_grad():
        z = reference_x_t(ddim, model, config, start_code, concept, empty, t_enc)
        e_0 = model_orig(z, t, encoder_hidden_states=empty).sample
        e_p = model_orig(z, t, encoder_hidden_states=concept).sample
    e_n = model(z, t, encoder_hidden_states=concept).sample
    loss = F.mse_loss(e_n, e_0 - ETA * (e_p - e_0))
    loss.backward()
    return loss, z


def kept(name, tensor):
    flat = tensor.detach().flatten()
    return {name: flat[:PREFIX].clone(), name + ".norm": flat.norm().reshape(1)}


def run_method(ddim, pipe, config, subset, draws, concept, empty, method):
    model = copy.deepcopy(pipe.unet)
    model_orig = copy.deepcopy(pipe.unet)
    model_orig.requires_grad_(False)
    model.requires_grad_(False)
    params = dict(model.named_parameters())
    originals = {k: params[k].detach().clone() for k in subset}
    for k in subset:
        params[k].requires_grad_(True)
    opt = torch.optim.Adam([params[k] for k in subset], lr=LR)
    out = {}
    for i, draw in enumerate(draws, start=1):
        loss, z = iteration(ddim, model, model_orig, opt, config, draw, concept, empty)
        out[f"loss.{i}"] = loss.detach().reshape(1)
        out[f"x_t.{i}"] = z
        out[f"t_enc.{i}"] = torch.tensor([float(draw[0])])
        out[f"timestep.{i}"] = torch.tensor([float(draw[1])])
        out[f"start_code.{i}"] = draw[2]
        if i == 1:
            for k in subset:
                out.update(kept(f"grad.1.{k}", params[k].grad))
        opt.step()
        for k in subset:
            out.update(kept(f"delta.{i}.{k}", params[k].detach() - originals[k]))
    assert all(model_orig.state_dict()[k].equal(originals[k]) for k in subset), "frozen stays"
    print(method, "losses", [out[f"loss.{i}"].item() for i in (1, 2)], "tensors", len(subset))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--erasing", required=True,
                        help="a folder holding the ldm package of rohitgandikota/erasing at b8aeab6")
    args = parser.parse_args()
    ddim, openaimodel = import_reference(args.erasing)
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(23)
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.unet.requires_grad_(False)
    config = pipe.scheduler.config
    # The fixture's tokenizer knows no words: the concept's text states are drawn.
    empty = encode(pipe, "")
    concept = torch.randn(empty.shape, generator=g)
    c = pipe.unet.config
    shape = (1, c.in_channels, c.sample_size, c.sample_size)

    # (a) the partial trajectory, the reference's sampler against diffusers' DDIMScheduler.
    start_code = torch.randn(shape, generator=g)
    scheduler = DDIMScheduler.from_config(config)
    traj = {"start_code": start_code, "concept": concept, "empty": empty,
            "t_enc": torch.tensor([float(k) for k in T_ENCS]),
            "bins": torch.tensor([ddpm_bin(k, 1000) for k in range(DDIM_STEPS)], dtype=torch.float32)}
    worst = 0.0
    for k in T_ENCS:
        z = reference_x_t(ddim, pipe.unet, config, start_code, concept, empty, k)
        other = diffusers_x_t(pipe.unet, scheduler, start_code, concept, empty, k)
        worst = max(worst, (z - other).abs().max().item())
        traj[f"x_t.{k}"] = z
        traj[f"x_t_diffusers.{k}"] = other
    assert worst < 1e-4, f"diffusers' DDIM differs from the reference's sampler by {worst}"
    print("trajectory: reference vs diffusers DDIMScheduler, largest difference", worst)
    save_file({k: v.float().contiguous() for k, v in traj.items()},
              os.path.join(OUT, "trajectory.safetensors"),
              metadata={"ddim_steps": str(DDIM_STEPS), "start_guidance": str(START_GUIDANCE)})

    # (b) two iterations per train method, from the original weights.
    subsets = reference_subsets(openaimodel, pipe.unet)
    with open(os.path.join(OUT, "subsets.json"), "w") as f:
        json.dump(subsets, f, indent=1)
        f.write("\n")
    draws = [(30, 617, torch.randn(shape, generator=g)), (3, 71, torch.randn(shape, generator=g))]
    for t_enc, t, _ in draws:
        low, high = ddpm_bin(t_enc, 1000)
        assert low <= t < high, "each draw's timestep lies in its bin"
    for method in ("noxattn", "xattn"):
        out = run_method(ddim, pipe, config, subsets[method], draws, concept, empty, method)
        save_file({k: v.float().contiguous() for k, v in out.items()},
                  os.path.join(OUT, f"iteration-{method}.safetensors"),
                  metadata={"lr": str(LR), "eta": str(ETA), "start_guidance": str(START_GUIDANCE),
                            "ddim_steps": str(DDIM_STEPS),
                            "prefix": str(PREFIX)})


if __name__ == "__main__":
    main()
