"""Builds Tests/DiffusionTests/Fixtures/lora-stack: two LoRA adapters for the pipeline
fixture's UNet and what diffusers computes with both stacked.

  a.safetensors   rank 2 on attn1 and attn2 (to_q, to_k, to_v, to_out.0), no alpha metadata
  b.safetensors   rank 3 on attn1 only
  reference.safetensors
      sample, timesteps, context: the UNet's inputs
      output: the UNet's noise prediction with `set_adapters(["a", "b"], [1.0, 0.5])`
      output_a: with "a" alone at weight 1 (the single-adapter path, for comparison)

Run once, never in CI (needs torch, diffusers, peft):
  tools/.venv-models/bin/pip install torch diffusers transformers peft safetensors numpy
  tools/.venv-models/bin/python tools/make_lora_stack_fixture.py
"""

import os

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures", "models", "pipeline")
OUT = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures", "lora-stack")


def adapter(unet, rank, attentions, generator, scale=0.3):
    """Random A and B (B non-zero, so the adapter changes the output) for every
    attention projection of the named kinds."""
    tensors = {}
    for name, module in unet.named_modules():
        last = name.split(".")
        if not isinstance(module, torch.nn.Linear) or len(last) < 2:
            continue
        if not any(f".{kind}." in f".{name}." for kind in attentions):
            continue
        if last[-1] not in ("to_q", "to_k", "to_v") and not name.endswith("to_out.0"):
            continue
        a = torch.randn(rank, module.in_features, generator=generator) * scale
        b = torch.randn(module.out_features, rank, generator=generator) * scale
        tensors[f"unet.{name}.lora_A.weight"] = a
        tensors[f"unet.{name}.lora_B.weight"] = b
    return tensors


def main():
    os.makedirs(OUT, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    pipe = StableDiffusionPipeline.from_pretrained(MODELS, safety_checker=None)
    unet = pipe.unet
    a = adapter(unet, 2, ["attn1", "attn2"], generator)
    b = adapter(unet, 3, ["attn1"], generator)
    save_file(a, os.path.join(OUT, "a.safetensors"), metadata={"format": "pt"})
    save_file(b, os.path.join(OUT, "b.safetensors"), metadata={"format": "pt"})

    sample = torch.randn(2, unet.config.in_channels, unet.config.sample_size,
                         unet.config.sample_size, generator=generator)
    context = torch.randn(2, 3, unet.config.cross_attention_dim, generator=generator)
    timesteps = torch.tensor([999, 250])

    pipe.load_lora_weights(os.path.join(OUT, "a.safetensors"), adapter_name="a")
    pipe.load_lora_weights(os.path.join(OUT, "b.safetensors"), adapter_name="b")
    with torch.no_grad():
        pipe.set_adapters(["a"], adapter_weights=[1.0])
        output_a = unet(sample, timesteps, encoder_hidden_states=context).sample
        pipe.set_adapters(["a", "b"], adapter_weights=[1.0, 0.5])
        output = unet(sample, timesteps, encoder_hidden_states=context).sample
    save_file({"sample": sample, "timesteps": timesteps.float(), "context": context,
               "output": output.contiguous(), "output_a": output_a.contiguous()},
              os.path.join(OUT, "reference.safetensors"))
    print("wrote", OUT, "max |output - output_a|", (output - output_a).abs().max().item())


if __name__ == "__main__":
    main()
