"""Builds Tests/MethodTests/Fixtures/sd-tiny: a tiny latent Stable Diffusion 1.x-style
pipeline with random weights, saved by diffusers' StableDiffusionPipeline.save_pretrained,
for the method's end-to-end test (synthesize -> unlearn -> attack -> eval).

Unlike Tests/DiffusionTests/Fixtures/models/pipeline (whose tokenizer knows no words:
prompts are given as ids there) this one has a working CLIP byte-level BPE tokenizer over a
small vocabulary, so prompts differ as they do on a real model, and SD 1.x's own scheduler
(PNDM with skip_prk_steps, as CompVis/stable-diffusion-v1-4 ships it). The UNet, VAE and
text encoder have the shapes of that fixture's (tools/make_model_fixtures.py), with the
text encoder's position table cut to the tokenizer's 16 tokens.

Run once, never in CI (needs torch, diffusers, transformers):
  tools/.venv-models/bin/python tools/make_method_fixture.py
"""

import json
import os
import shutil
import sys
import tempfile

import torch
from diffusers import PNDMScheduler, StableDiffusionPipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import randomize, unet_a, vae  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "MethodTests", "Fixtures", "sd-tiny")

# Whole-word tokens for these words (and the byte tokens for any other text).
WORDS = """a an the of on in with and at red blue green car house apple fruit table plate
sky field man woman photo realistic portrait dog cat tree river city night street crimson
painting light dark white black small big""".split()


def byte_unicode():
    """GPT-2/CLIP's map from bytes to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tokenizer_files(folder):
    """vocab.json and merges.txt: the byte characters, each again with </w>, then one
    merge per step that builds each word left to right, then bos and eos."""
    chars = byte_unicode()
    vocab = chars + [c + "</w>" for c in chars]
    merges = []
    for word in WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merge = (parts[0], parts[1])
            joined = parts[0] + parts[1]
            if merge not in merges:
                merges.append(merge)
                vocab.append(joined)
            parts = [joined] + parts[2:]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    ids = {token: i for i, token in enumerate(dict.fromkeys(vocab))}
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(ids, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return len(ids)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        size = tokenizer_files(scratch)
        tokenizer = CLIPTokenizer(os.path.join(scratch, "vocab.json"),
                                  os.path.join(scratch, "merges.txt"), model_max_length=16)
    config = CLIPTextConfig(vocab_size=size, hidden_size=32, intermediate_size=37,
                            num_hidden_layers=2, num_attention_heads=4,
                            max_position_embeddings=16, hidden_act="quick_gelu",
                            bos_token_id=size - 2, eos_token_id=size - 1, pad_token_id=size - 1)
    encoder = randomize(CLIPTextModel(config), 11)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, set_alpha_to_one=False,
                              skip_prk_steps=True, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae(), text_encoder=encoder, tokenizer=tokenizer,
                                   unet=unet_a(), scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(OUT, safe_serialization=True)
    ids = tokenizer("a red apple on a plate").input_ids
    assert tokenizer.unk_token_id not in ids[1:-1], ids
    print("wrote", OUT, "vocabulary", size, "ids of 'a red apple on a plate':", ids)


if __name__ == "__main__":
    main()
