"""Builds Tests/UnlearningTests/Fixtures/uce/edit.safetensors: UCE's closed-form edit of the
cross-attention key and value projections (Gandikota et al., "Unified Concept Editing in
Diffusion Models", WACV 2024) on the tiny SD fixture (Tests/MethodTests/Fixtures/sd-tiny),
computed as the authors' erase script computes it:
rohitgandikota/unified-concept-editing at 35e91e28df2f2fbcbef105fa079a436641a5142b,
train-scripts/train_erase.py, `edit_model` (lines 172-315) with the script's defaults
(lines 321-442). Written here from the paper's equation and that function, not copied:

  for every attn2 to_v and to_k (lines 175-194), W its original weight:
    mat1 = lamb W + erase_scale sum_i v_i k_i^T + preserve_scale sum_j (W e_j) e_j^T
    mat2 = lamb I + erase_scale sum_i k_i k_i^T + preserve_scale sum_j e_j e_j^T
    W_new = mat1 mat2^-1                                             (lines 233-312)
  k_i: the erased prompt's token embeddings from its last word token on, v_i the guide's
  projection at the aligned positions ('replace'), or that projection less its component
  along the erased prompt's own projection ('tensor'); both cut to one length (253-260).
  e_j: every position of each preserved prompt, the empty prompt always among them (422).
  A guide "" becomes " " (214-216); preserve_scale defaults to max(0.1, 1/len(retain)) (428).

The reference runs in float32 with torch.inverse; this script solves in float64 (the same
math, without float32's rounding of a badly conditioned system) and records how far the
float32 computation lands from it, per case, in the metadata.

Run once, never in CI (needs torch, transformers, diffusers):
  tools/.venv-models/bin/python tools/make_uce_fixture.py
"""

import json
import os

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "Tests", "MethodTests", "Fixtures", "sd-tiny")
OUT = os.path.join(HERE, "..", "Tests", "UnlearningTests", "Fixtures", "uce")

# Prompts of several BPE tokens each (the last word token is what UCE keys on), one guide
# long enough to be truncated at the fixture's 16 positions (the cut of lines 255-260).
CASES = [
    {"name": "replace", "erase": ["striped", "stripes on a zebra"], "guide": ["", ""],
     "preserve": ["a red circle", "banded"], "lambda": 0.5, "erase_scale": 1.0,
     "preserve_scale": None, "technique": "replace"},
    {"name": "tensor", "erase": ["striped"],
     "guide": ["a very long guide prompt that the tokenizer truncates at sixteen tokens"],
     "preserve": [], "lambda": 0.5, "erase_scale": 1.0, "preserve_scale": None,
     "technique": "tensor"},
    {"name": "guided", "erase": ["zebra", "tiger"], "guide": ["a horse", "a cat"],
     "preserve": ["tiger stripes"], "lambda": 0.3, "erase_scale": 0.7,
     "preserve_scale": 0.2, "technique": "replace"},
]


def encode(tokenizer, text_encoder, texts):
    """Token embeddings [B, L, d] and attention masks, as the reference tokenizes."""
    inputs = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,
                       truncation=True, return_tensors="pt")
    with torch.no_grad():
        return text_encoder(inputs.input_ids)[0], inputs.attention_mask


def erase_rows(tokenizer, text_encoder, erase, guide, dtype):
    """(keys, guide rows) of one erase pair: from each prompt's last word token on, cut to
    a common length so that the two prompts' positions line up."""
    guide = " " if guide == "" else guide
    embeddings, mask = encode(tokenizer, text_encoder, [erase, guide])
    length = embeddings.shape[1]
    last_erase = int(mask[0].sum()) - 2
    last_guide = int(mask[1].sum()) - 2
    farthest = max(last_erase, last_guide)
    keys = embeddings[0][last_erase:length - max(0, farthest - last_erase)]
    guides = embeddings[1][last_guide:length - max(0, farthest - last_guide)]
    return keys.to(dtype), guides.to(dtype)


def targets(weight, keys, guides, technique):
    """v*: the guide's projection ('replace'), or minus its part along the erased prompt's
    own projection, normalized over all its positions at once ('tensor')."""
    projected = guides @ weight.T
    if technique == "replace":
        return projected
    own = keys @ weight.T
    u = own / own.norm()
    return projected - (u * projected).sum() * u


def uce(weight, erase_pairs, preserved, case, dtype):
    weight = weight.to(dtype)
    retain = 1 + len(case["preserve"])
    preserve_scale = case["preserve_scale"]
    if preserve_scale is None:
        preserve_scale = max(0.1, 1 / retain)
    mat1 = case["lambda"] * weight
    mat2 = case["lambda"] * torch.eye(weight.shape[1], dtype=dtype)
    for keys, guides in erase_pairs:
        values = targets(weight, keys, guides, case["technique"])
        mat1 = mat1 + case["erase_scale"] * values.T @ keys
        mat2 = mat2 + case["erase_scale"] * keys.T @ keys
    for rows in preserved:
        mat1 = mat1 + preserve_scale * (rows @ weight.T).T @ rows
        mat2 = mat2 + preserve_scale * rows.T @ rows
    return mat1 @ torch.inverse(mat2)


def edit(unet, tokenizer, text_encoder, case, dtype):
    erase_pairs = [erase_rows(tokenizer, text_encoder, e, g, dtype)
                   for e, g in zip(case["erase"], case["guide"])]
    preserved = [encode(tokenizer, text_encoder, [t])[0][0].to(dtype)
                 for t in [""] + case["preserve"]]
    edited = {}
    for name, module in unet.named_modules():
        if ".attn2." in f".{name}." and name.split(".")[-1] in ("to_k", "to_v"):
            edited[name + ".weight"] = uce(module.weight.detach(), erase_pairs, preserved,
                                           case, dtype)
    return edited


def main():
    os.makedirs(OUT, exist_ok=True)
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(MODEL, "tokenizer"))
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder"))
    unet = UNet2DConditionModel.from_pretrained(os.path.join(MODEL, "unet"))
    tensors, record = {}, []
    for case in CASES:
        exact = edit(unet, tokenizer, text_encoder, case, torch.float64)
        single = edit(unet, tokenizer, text_encoder, case, torch.float32)
        gap = max(float(((single[k].double() - v).norm() / v.norm())) for k, v in exact.items())
        change = max(float(((v - unet.state_dict()[k].double()).norm()
                            / unet.state_dict()[k].double().norm())) for k, v in exact.items())
        for key, value in exact.items():
            tensors[f"{case['name']}/{key}"] = value.float().contiguous()
        record.append(dict(case, float32_relative_gap=gap, relative_change=change))
        print(case["name"], "layers", len(exact), "max relative change", change,
              "float32 vs float64", gap)
    save_file(tensors, os.path.join(OUT, "edit.safetensors"),
              metadata={"cases": json.dumps(record)})


if __name__ == "__main__":
    main()
