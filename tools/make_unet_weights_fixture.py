"""Builds Tests/DiffusionTests/Fixtures/unet-weights: UNet weights files (partial diffusers
UNet state_dicts holding the new full values of the parameters they change, as ESD and UCE
release their models) for the pipeline fixture's UNet, and what that UNet computes with them.

  edit.safetensors    new values of both cross-attention to_k/to_v weights (UCE's edit), a
                      convolution, a norm bias and the time embedding's first layer
  edit2.safetensors   new values of one to_k (shared with edit) and conv_out.bias
  reference.safetensors
      sample, timesteps, context: the UNet's inputs
      output_edit: the UNet with edit's values loaded (W <- W_file)
      output_stack: W <- W_base + 1.0 (W_edit - W_base) + 0.5 (W_edit2 - W_base)
      output_edit_lora: edit's values, then diffusers' load_lora_weights of
                        lora-stack/a.safetensors at weight 1

Run once, never in CI (needs torch, diffusers, peft):
  tools/.venv-models/bin/python tools/make_unet_weights_fixture.py
"""

import os

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures")
MODELS = os.path.join(FIXTURES, "models", "pipeline")
OUT = os.path.join(FIXTURES, "unet-weights")
METADATA = {"format": "pt"}

EDIT = [
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.weight",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v.weight",
    "down_blocks.0.resnets.0.conv1.weight",
    "mid_block.resnets.0.norm1.bias",
    "time_embedding.linear_1.weight",
]
EDIT2 = [
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
    "conv_out.bias",
]


def changed(state, keys, generator, scale=0.3):
    """New full values: each parameter plus noise, so the edit moves the output."""
    return {
        key: (state[key] + torch.randn(state[key].shape, generator=generator) * scale)
        .contiguous()
        for key in keys
    }


def load_pipe():
    return StableDiffusionPipeline.from_pretrained(MODELS, safety_checker=None)


def run(unet, inputs):
    sample, timesteps, context = inputs
    with torch.no_grad():
        return unet(sample, timesteps, encoder_hidden_states=context).sample.contiguous()


def main():
    os.makedirs(OUT, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    pipe = load_pipe()
    base = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    edit = changed(base, EDIT, generator)
    edit2 = changed(base, EDIT2, generator)
    save_file(edit, os.path.join(OUT, "edit.safetensors"), metadata=METADATA)
    save_file(edit2, os.path.join(OUT, "edit2.safetensors"), metadata=METADATA)

    config = pipe.unet.config
    sample = torch.randn(2, config.in_channels, config.sample_size, config.sample_size,
                         generator=generator)
    context = torch.randn(2, 3, config.cross_attention_dim, generator=generator)
    timesteps = torch.tensor([999, 250])
    inputs = (sample, timesteps, context)

    pipe.unet.load_state_dict(edit, strict=False)
    output_edit = run(pipe.unet, inputs)

    stacked = dict(base)
    for values, weight in ((edit, 1.0), (edit2, 0.5)):
        for key, value in values.items():
            stacked[key] = stacked[key] + weight * (value - base[key])
    pipe.unet.load_state_dict(stacked)
    output_stack = run(pipe.unet, inputs)

    pipe = load_pipe()
    pipe.unet.load_state_dict(edit, strict=False)
    pipe.load_lora_weights(os.path.join(FIXTURES, "lora-stack", "a.safetensors"),
                           adapter_name="a")
    pipe.set_adapters(["a"], adapter_weights=[1.0])
    output_edit_lora = run(pipe.unet, inputs)

    save_file({"sample": sample, "timesteps": timesteps.float(), "context": context,
               "output_edit": output_edit, "output_stack": output_stack,
               "output_edit_lora": output_edit_lora},
              os.path.join(OUT, "reference.safetensors"))
    print("wrote", OUT, "max |stack - edit|", (output_stack - output_edit).abs().max().item(),
          "max |edit+lora - edit|", (output_edit_lora - output_edit).abs().max().item())


if __name__ == "__main__":
    main()
