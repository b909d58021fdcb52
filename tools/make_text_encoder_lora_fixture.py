"""Builds Tests/DiffusionTests/Fixtures/text-encoder-lora: a LoRA file that adapts the
pipeline fixture's text encoder and UNet, as diffusers' `save_lora_weights` writes it, and
what transformers' CLIPTextModel computes with it loaded by `load_lora_weights`.

  adapter.safetensors   rank 2 (alpha 2) on the text encoder's q/k/v/out_proj and the
                        UNet's attn1 to_q/to_k/to_v/to_out.0, B non-zero; keys as diffusers
                        writes them under transformers v5 (text_encoder.encoder.layers...)
  reference.safetensors
      input_ids:  [2, 6] token ids (float)
      hidden:     the text encoder's last hidden state without the adapter
      hidden_lora: the same with the adapter loaded

The script also checks that diffusers reads the transformers v4 key form
(text_encoder.text_model.encoder.layers..., what duo writes) to the same encoder.

Run once, never in CI (needs torch, diffusers, peft):
  tools/.venv-models/bin/pip install torch diffusers transformers peft safetensors numpy
  tools/.venv-models/bin/python tools/make_text_encoder_lora_fixture.py
"""

import os
import tempfile

import torch
from diffusers import StableDiffusionPipeline
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures", "models", "pipeline")
OUT = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures", "text-encoder-lora")


def pipeline():
    return StableDiffusionPipeline.from_pretrained(MODELS, safety_checker=None)


def randomized(model, modules, generator):
    """peft adapters of rank 2 on `modules`, with A and B drawn non-zero."""
    inject_adapter_in_model(LoraConfig(r=2, lora_alpha=2, target_modules=modules), model)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return get_peft_model_state_dict(model)


def encode(pipe, ids):
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]


def main():
    os.makedirs(OUT, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    source = pipeline()
    text_layers = randomized(
        source.text_encoder, ["q_proj", "k_proj", "v_proj", "out_proj"], generator)
    unet_layers = randomized(
        source.unet, r".*attn1\.(to_q|to_k|to_v|to_out\.0)", generator)
    StableDiffusionPipeline.save_lora_weights(
        OUT, unet_lora_layers=unet_layers, text_encoder_lora_layers=text_layers,
        weight_name="adapter.safetensors", safe_serialization=True)

    ids = torch.tensor([[998, 5, 17, 42, 999, 999], [998, 300, 999, 999, 999, 999]])
    hidden = encode(pipeline(), ids)
    adapted = pipeline()
    adapted.load_lora_weights(os.path.join(OUT, "adapter.safetensors"))
    hidden_lora = encode(adapted, ids)

    # The v4 key form reads to the same encoder.
    weights = load_file(os.path.join(OUT, "adapter.safetensors"))
    legacy = {k.replace("text_encoder.", "text_encoder.text_model.", 1): v
              for k, v in weights.items()}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "legacy.safetensors")
        save_file(legacy, path, metadata={"format": "pt"})
        other = pipeline()
        other.load_lora_weights(path)
        assert torch.equal(encode(other, ids), hidden_lora), "v4 keys read differently"

    save_file({"input_ids": ids.float(), "hidden": hidden.contiguous(),
               "hidden_lora": hidden_lora.contiguous()},
              os.path.join(OUT, "reference.safetensors"))
    print("wrote", OUT, "max |hidden_lora - hidden|", (hidden_lora - hidden).abs().max().item())


if __name__ == "__main__":
    main()
