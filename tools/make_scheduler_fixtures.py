"""Builds the scheduler fixtures of Tests/DiffusionTests/Fixtures/schedulers.

For each case below (a scheduler configuration), diffusers' own DDIMScheduler and
DDPMScheduler record:

  <case>/ddim/scheduler_config.json, <case>/ddpm/scheduler_config.json
                        the configs as diffusers' save_config writes them (read back by
                        the Swift tests through the same loader as a model folder's)
  <case>/expected.json  timesteps after set_timesteps(N) for several N, the img2img
                        (SDEdit) timesteps for several strengths (from the img2img
                        pipeline's own get_timesteps), the add_noise timesteps, eta
  <case>/reference.safetensors
                        betas and alphas_cumprod (float32, as diffusers holds them);
                        full inference runs: the start sample, the model output fed at
                        each step and prev_sample after each step, for DDIM with eta 0,
                        DDIM with eta > 0 (its variance_noise argument given), and DDPM
                        (its noise drawn from a seeded generator, recorded by drawing the
                        same numbers from a twin generator); add_noise and get_velocity
                        on a batch with a different timestep per sample
  pndm/                 Stable Diffusion 1.x's shipped PNDMScheduler config and the
                        DDIM/DDPM configs diffusers' from_config derives from it
                        (expected.json); diffusers' PNDMScheduler itself on that config
                        and on two more (prk/, v_trailing/): runs.json holds its timesteps
                        for several N and the img2img ones, reference.safetensors the
                        betas and full runs as above (no noise: PNDM is deterministic);
                        pipeline.safetensors the image diffusers' StableDiffusionPipeline
                        makes with SD's PNDM config on the tiny model folder of
                        tools/make_model_fixtures.py, from its recorded latents and prompts

Model outputs come from an "oracle" that knows a fixed x0 (the epsilon, v or x0 that
would be exact for the current sample) plus a small fixed perturbation: trajectories stay
O(1) like real sampling, and every step still carries model noise.

Precision (see Tests/DiffusionTests/SchedulerTests.swift): the references carry torch's CPU
rounding. torch.linspace's vectorized kernel (its lane count set by the CPU capability
printed at the end) rounds some betas 1 ulp off its scalar formula, and torch.sqrt (MKL's
vector math; here on an AMD EPYC with AVX-512) is not correctly rounded: 226 of SD's 1000
sqrt(1 - alphas_cumprod) are 1 ulp off. Regenerated on another machine, the files may differ
in the last bits; the Swift tolerances leave room for that.

Run once, never in CI (needs torch, diffusers, safetensors, numpy):
  python3 -m venv tools/.venv-models
  tools/.venv-models/bin/pip install torch diffusers safetensors numpy
  tools/.venv-models/bin/python tools/make_scheduler_fixtures.py
"""

import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler, StableDiffusionPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import (
    StableDiffusionImg2ImgPipeline)
from safetensors.torch import load_file, save_file

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "DiffusionTests", "Fixtures")
ROOT = os.path.join(FIXTURES, "schedulers")
SHAPE = (2, 4, 2, 2)  # elementwise math: spatial size adds nothing but bytes
TIMESTEP_COUNTS = [1, 7, 10, 20, 50]
STRENGTHS = [(50, 0.3), (50, 0.75), (50, 0.8), (50, 1.0), (10, 0.55)]
ADD_NOISE_TIMESTEPS = [0, 1, 420, 999]

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
          num_train_timesteps=1000, clip_sample=False, prediction_type="epsilon")

# name: (shared config, DDIM-only keys, DDPM-only keys, DDIM steps, DDPM steps, DDIM eta)
CASES = {
    # Stable Diffusion 1.x as its pipelines run it.
    "sd": (dict(SD, steps_offset=1, timestep_spacing="leading"),
           dict(set_alpha_to_one=False), dict(variance_type="fixed_small"), 50, 20, 0.5),
    # Linear betas, trailing spacing, v-prediction; DDPM with the larger variance.
    "v_trailing": (dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                        clip_sample=False, prediction_type="v_prediction",
                        timestep_spacing="trailing"),
                   dict(set_alpha_to_one=True), dict(variance_type="fixed_large"), 10, 10, 1.0),
    # Linspace spacing with x0 clipping (the clamp is active: the oracle's x0 is N(0, 1)).
    "linspace_clip": (dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                           clip_sample=True, clip_sample_range=1.0,
                           timestep_spacing="linspace"),
                      dict(set_alpha_to_one=True), dict(variance_type="fixed_small"), 10, 10,
                      None),
    # Cosine betas, x0 prediction, the log form of the small variance.
    "cosine_sample": (dict(beta_schedule="squaredcos_cap_v2", clip_sample=False,
                           prediction_type="sample", steps_offset=1),
                      dict(set_alpha_to_one=False), dict(variance_type="fixed_small_log"), 10, 10,
                      None),
    # Zero terminal SNR (Lin et al. 2024): rescaled betas, trailing, v-prediction.
    "zero_snr": (dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                      prediction_type="v_prediction"),
                 dict(set_alpha_to_one=False), dict(variance_type="fixed_small"), 10, 10, None),
}


def tensor(rng, shape=SHAPE):
    return torch.tensor(rng.standard_normal(shape), dtype=torch.float32)


def oracle(scheduler, sample, t, x0, perturbation):
    """What a model that knows x0 would predict for `sample` at t, plus a perturbation."""
    alpha_prod = scheduler.alphas_cumprod[t]
    epsilon = (sample - alpha_prod.sqrt() * x0) / (1 - alpha_prod).sqrt()
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        exact = epsilon
    elif kind == "v_prediction":
        exact = alpha_prod.sqrt() * epsilon - (1 - alpha_prod).sqrt() * x0
    else:
        exact = x0
    return exact + 0.05 * perturbation


def run(scheduler, steps, rng, prefix, eta=None, generator_seed=None):
    """A full inference run; returns the tensors that let Swift replay it."""
    scheduler.set_timesteps(steps)
    x0, epsilon = tensor(rng), tensor(rng)
    sample = scheduler.add_noise(x0, epsilon, scheduler.timesteps[:1])
    start = sample
    outputs, samples, noises = [], [], []
    generator = twin = None
    if generator_seed is not None:
        generator = torch.Generator().manual_seed(generator_seed)
        twin = torch.Generator().manual_seed(generator_seed)
    for t in scheduler.timesteps:
        output = oracle(scheduler, sample, t, x0, tensor(rng))
        if eta is not None:
            noise = tensor(rng)
            sample = scheduler.step(output, t, sample, eta=eta, variance_noise=noise).prev_sample
            noises.append(noise)
        elif generator is not None:
            # DDPM draws randn(shape) from the generator when t > 0: the twin draws the same.
            if t > 0:
                noises.append(torch.randn(SHAPE, generator=twin, dtype=torch.float32))
            else:
                noises.append(torch.zeros(SHAPE))
            sample = scheduler.step(output, t, sample, generator=generator).prev_sample
        else:
            sample = scheduler.step(output, t, sample).prev_sample
        outputs.append(output)
        samples.append(sample)
    tensors = {f"{prefix}.start": start, f"{prefix}.model_outputs": torch.stack(outputs),
               f"{prefix}.prev_samples": torch.stack(samples)}
    if noises:
        tensors[f"{prefix}.variance_noise"] = torch.stack(noises)
    return tensors


def img2img_timesteps(scheduler):
    result = []
    for steps, strength in STRENGTHS:
        scheduler.set_timesteps(steps)
        stub = SimpleNamespace(scheduler=scheduler)
        timesteps, _ = StableDiffusionImg2ImgPipeline.get_timesteps(stub, steps, strength, "cpu")
        result.append({"steps": steps, "strength": strength,
                       "timesteps": timesteps.tolist()})
    return result


def timesteps_table(scheduler):
    table = {}
    for n in TIMESTEP_COUNTS:
        scheduler.set_timesteps(n)
        table[str(n)] = scheduler.timesteps.tolist()
    return table


def write_case(name, shared, ddim_only, ddpm_only, ddim_steps, ddpm_steps, eta, seed):
    folder = os.path.join(ROOT, name)
    ddim = DDIMScheduler(**shared, **ddim_only)
    ddpm = DDPMScheduler(**shared, **ddpm_only)
    assert torch.equal(ddim.alphas_cumprod, ddpm.alphas_cumprod)
    ddim.save_config(os.path.join(folder, "ddim"))
    ddpm.save_config(os.path.join(folder, "ddpm"))
    rng = np.random.default_rng(seed)
    tensors = {"betas": ddim.betas, "alphas_cumprod": ddim.alphas_cumprod}
    tensors.update(run(ddim, ddim_steps, rng, "ddim"))
    if eta is not None:
        tensors.update(run(DDIMScheduler(**shared, **ddim_only), 10, rng, "ddim_eta", eta=eta))
    tensors.update(run(ddpm, ddpm_steps, rng, "ddpm", generator_seed=seed))
    original, noise = tensor(rng, (4, 2, 2, 2)), tensor(rng, (4, 2, 2, 2))
    timesteps = torch.tensor(ADD_NOISE_TIMESTEPS)
    tensors.update({"add_noise.original": original, "add_noise.noise": noise,
                    "add_noise.output": ddim.add_noise(original, noise, timesteps),
                    "velocity.output": ddim.get_velocity(original, noise, timesteps)})
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(folder, "reference.safetensors"))
    expected = {
        "runs": {"ddim": ddim_steps, "ddpm": ddpm_steps, "ddim_eta": 10 if eta else None},
        "eta": eta,
        "timesteps": {"ddim": timesteps_table(ddim), "ddpm": timesteps_table(ddpm)},
        "img2img": {"ddim": img2img_timesteps(ddim), "ddpm": img2img_timesteps(ddpm)},
        "add_noise_timesteps": ADD_NOISE_TIMESTEPS,
    }
    write_json(os.path.join(folder, "expected.json"), expected)


def write_pndm():
    """SD 1.x folders ship a PNDMScheduler config; diffusers builds DDIM/DDPM from it with
    from_config, taking each class's defaults for the keys PNDM lacks."""
    folder = os.path.join(ROOT, "pndm")
    pndm = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         num_train_timesteps=1000, set_alpha_to_one=False,
                         skip_prk_steps=True, steps_offset=1)
    pndm.save_config(folder)
    derived = {}
    for cls in (DDIMScheduler, DDPMScheduler):
        scheduler = cls.from_config(pndm.config)
        derived[cls.__name__] = {k: v for k, v in scheduler.config.items()
                                 if not k.startswith("_")}
        derived[cls.__name__]["timesteps_50"] = timesteps_table(scheduler)["50"]
    write_json(os.path.join(folder, "expected.json"), derived)


# PNDM (Liu et al. 2022) as diffusers runs it. name: (config, runs as {run name: steps})
PNDM_CASES = {
    # Stable Diffusion 1.x's own: PLMS with its warm-up (the shipped config).
    "sd": (dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True,
                steps_offset=1),
           {"sd_50": 50, "sd_20": 20}),
    # The Runge-Kutta start; 9 steps make 1000 // 9 odd, so the midpoint timesteps and
    # the half steps diffusers takes to them differ by one.
    "prk": (dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 set_alpha_to_one=False, skip_prk_steps=False, steps_offset=1),
            {"prk_9": 9}),
    # v-prediction, trailing spacing, linear betas, alpha 1 past the end.
    "v_trailing": (dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                        prediction_type="v_prediction", timestep_spacing="trailing",
                        set_alpha_to_one=True, skip_prk_steps=True),
                   {"v_trailing_10": 10}),
}
PNDM_TIMESTEP_COUNTS = {"sd": [1, 2, 7, 10, 20, 50], "prk": [4, 7, 9, 10, 20, 50],
                        "v_trailing": [1, 7, 10, 20, 50]}


def write_pndm_runs(seed):
    folder = os.path.join(ROOT, "pndm")
    rng = np.random.default_rng(seed)
    tensors, configs, runs, timesteps, img2img = {}, {}, {}, {}, {}
    for name, (config, case_runs) in PNDM_CASES.items():
        scheduler = PNDMScheduler(**config)
        # The SD config is the shipped one (write_pndm saves it at the top).
        configs[name] = "scheduler_config.json" if name == "sd" else f"{name}/scheduler_config.json"
        if name != "sd":
            scheduler.save_config(os.path.join(folder, name))
        tensors[f"{name}.betas"] = scheduler.betas
        tensors[f"{name}.alphas_cumprod"] = scheduler.alphas_cumprod
        for run_name, steps in case_runs.items():
            tensors.update(run(PNDMScheduler(**config), steps, rng, run_name))
            runs[run_name] = {"config": name, "steps": steps}
        table = {}
        for n in PNDM_TIMESTEP_COUNTS[name]:
            scheduler.set_timesteps(n)
            table[str(n)] = scheduler.timesteps.tolist()
        timesteps[name] = table
        img2img[name] = img2img_timesteps(scheduler)
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(folder, "reference.safetensors"))
    write_json(os.path.join(folder, "runs.json"),
               {"configs": configs, "runs": runs, "timesteps": timesteps, "img2img": img2img})


def write_pndm_pipeline(steps=10):
    """The tiny pipeline of the model fixtures sampled with SD's PNDM (PLMS) scheduler, as
    its DDIM run there: same latents, prompts, guidance 7.5."""
    models = os.path.join(FIXTURES, "models")
    reference = load_file(os.path.join(models, "reference.safetensors"))
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(models, "pipeline"),
                                                   safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = PNDMScheduler.from_pretrained(os.path.join(ROOT, "pndm"))
    encode = lambda name: pipe.text_encoder(reference[name].long()).last_hidden_state
    with torch.no_grad():
        image = pipe(prompt_embeds=encode("pipeline.cond_ids"),
                     negative_prompt_embeds=encode("pipeline.uncond_ids"),
                     latents=reference["pipeline.latents"].clone(), num_inference_steps=steps,
                     guidance_scale=7.5, output_type="pt").images
    save_file({"image": image.contiguous()}, os.path.join(ROOT, "pndm", "pipeline.safetensors"),
              metadata={"steps": str(steps), "guidance": "7.5"})


def write_json(path, value):
    """One top-level key per line, lists kept on one line (small, still diffable)."""
    lines = [f" {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in value.items()]
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def main():
    torch.set_num_threads(1)
    shutil.rmtree(ROOT, ignore_errors=True)
    for seed, (name, case) in enumerate(CASES.items()):
        write_case(name, *case, seed=seed)
    write_pndm()
    write_pndm_runs(seed=len(CASES))
    write_pndm_pipeline()
    print("torch CPU capability (decides the last bits of linspace and sqrt):",
          torch.backends.cpu.get_cpu_capability())


if __name__ == "__main__":
    main()
