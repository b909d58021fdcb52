"""Builds the CLIP fixture of Tests/DiffusionTests/Fixtures/models/clip.

A tiny random-weight transformers CLIPModel, saved with save_pretrained as a user's CLIP
folder is (config.json with text_config, vision_config and projection_dim,
model.safetensors, tokenizer files, preprocessor_config.json), and its reference outputs:

  clip/                    the folder: text and vision towers of different widths, depths
                           and activations (so a cross-wired config shows), projection_dim
                           8, a byte-level BPE vocabulary of 512 characters, a few merges
                           and the two special tokens (eos is not 2: the first-eos rule)
  clip-reference.safetensors
    images.original, images.model   U8 [10, 24, 24, 3]: two sets of images at the crop size
    pixel_values.model              transformers' CLIPImageProcessorPil of images.model
    image_features.{original,model} get_image_features (projected, not normalized: the
                                    features clean-fid's CLIP-FID uses)
    image_embeds.model              CLIPModel's forward: the same, L2-normalized
    text.input_ids, text.attention_mask  the tokenizer's ids of PROMPTS, padding=True
    text_features, text_embeds      get_text_features, and the forward's normalized ones
    logits_per_image                [10, 4] from CLIPModel's forward
    clip_score.per_image            100 cos(image i, prompt i % 4), as torchmetrics'
                                    _clip_score_update computes it (numpy, float64)
    clip_score                      torchmetrics' CLIPScore.compute: max(mean, 0)
    clip_fid                        the Fréchet distance of image_features.model to
                                    image_features.original (scipy.linalg.sqrtm)
    fid.features_a, fid.features_b  [40, 16] and [30, 16] correlated Gaussian samples, and
    fid.scipy                       their Fréchet distance (scipy.linalg.sqrtm)
    resized.{0..3}.image            U8 images of other sizes (a downscale, an upscale, an
                                    identity resize with a crop, a gray image) and
    resized.pixel_values            what CLIPImageProcessorPil makes of them (PIL bicubic)
    resized.bilinear_pixel_values   the same with resample=2 (PIL bilinear)
  metadata: "fixture", JSON with the prompts and the library versions.

Run once, never in CI (needs torch, transformers, pillow, scipy):
  tools/.venv-models/bin/pip install scipy
  tools/.venv-models/bin/python tools/make_clip_fixture.py
"""

import json
import os
import shutil

import numpy as np
import scipy
import scipy.linalg
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

ROOT = os.path.join(os.path.dirname(__file__), "..", "Tests", "DiffusionTests", "Fixtures",
                    "models")
FOLDER = os.path.join(ROOT, "clip")
PROMPTS = ["a photo of a cat", "a red circle on a blue background", "two dogs",
           "stripes, stripes!"]
SIZE = 24
torch.set_num_threads(2)


def byte_characters():
    """The 256 characters byte-level BPE writes bytes as (GPT-2's table): printable bytes
    stand for themselves, the rest are shifted past 255."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table, shift = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return [table[b] for b in range(256)]


def tokenizer():
    chars = byte_characters()
    vocab = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges = [("c", "a"), ("ca", "t</w>"), ("o", "f</w>"), ("r", "e"), ("re", "d</w>"),
              ("s", "t"), ("st", "r")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges,
                         model_max_length=77)


def randomize(model, seed):
    """Random weights everywhere (norms included), so that every parameter matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) / max(fan_in, 1) ** 0.5)
        model.logit_scale.fill_(2.0)
    return model.eval()


def model(tok):
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    bos = tok.convert_tokens_to_ids("<|startoftext|>")
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=bos, eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=24, intermediate_size=40, num_hidden_layers=3,
                           num_attention_heads=4, image_size=SIZE, patch_size=8,
                           hidden_act="gelu", layer_norm_eps=1e-6),
        projection_dim=8)
    return randomize(CLIPModel(config), 11)


def frechet(a, b):
    """pytorch-fid's formula on float64 statistics, with scipy's matrix square root."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2)
    assert np.isfinite(root).all() and np.abs(root.imag).max() < 1e-8, "sqrtm failed"
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                 - 2 * np.trace(root.real))


def images(rng, count, height, width, channels=3):
    """Smooth colour ramps with noise: image-like, and every pixel different."""
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    out = []
    for _ in range(count):
        slope = rng.uniform(-200, 200, size=(2, channels))
        base = rng.uniform(30, 220, size=channels)
        noise = rng.normal(0, 25, size=(height, width, channels))
        out.append(np.clip(base + slope[0] * (y - 0.5) + slope[1] * (x - 0.5) + noise,
                           0, 255).round().astype(np.uint8))
    return np.stack(out)


def main():
    shutil.rmtree(FOLDER, ignore_errors=True)
    rng = np.random.default_rng(22)
    tok = tokenizer()
    clip = model(tok)
    # With these weights the mean cosine is negative, and CLIPScore's floor at 0 would
    # hide it: the opposite text projection makes every cosine change sign.
    with torch.no_grad():
        clip.text_projection.weight.neg_()
    processor = CLIPImageProcessorPil(size={"shortest_edge": SIZE},
                                      crop_size={"height": SIZE, "width": SIZE})
    clip.save_pretrained(FOLDER)
    tok.save_pretrained(FOLDER)
    processor.save_pretrained(FOLDER)
    out = {}

    original, candidate = images(rng, 10, SIZE, SIZE), images(rng, 10, SIZE, SIZE)
    out["images.original"] = torch.from_numpy(original)
    out["images.model"] = torch.from_numpy(candidate)
    pixels = {name: processor([Image.fromarray(i) for i in imgs],
                              return_tensors="pt")["pixel_values"]
              for name, imgs in [("original", original), ("model", candidate)]}
    out["pixel_values.model"] = pixels["model"]

    text = tok(PROMPTS, padding=True, return_tensors="pt")
    out["text.input_ids"] = text["input_ids"].float()
    out["text.attention_mask"] = text["attention_mask"].float()
    with torch.no_grad():
        for name in ["original", "model"]:
            out["image_features." + name] = clip.get_image_features(
                pixel_values=pixels[name]).pooler_output
        out["text_features"] = clip.get_text_features(**text).pooler_output
        both = clip(input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                    pixel_values=pixels["model"])
        out["image_embeds.model"] = both.image_embeds
        out["text_embeds"] = both.text_embeds
        out["logits_per_image"] = both.logits_per_image

    # torchmetrics' CLIPScore: 100 cos per (image, caption), the mean floored at 0.
    img = out["image_features.model"].double().numpy()
    txt = out["text_features"].double().numpy()[np.arange(10) % len(PROMPTS)]
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    per_image = 100 * (img * txt).sum(1)
    out["clip_score.per_image"] = torch.from_numpy(per_image)
    out["clip_score"] = torch.tensor([max(per_image.mean(), 0.0)])
    out["clip_fid"] = torch.tensor([frechet(out["image_features.model"].numpy(),
                                            out["image_features.original"].numpy())])

    mix_a, mix_b = rng.normal(size=(16, 16)) / 4, rng.normal(size=(16, 16)) / 3
    a = (rng.normal(size=(40, 16)) @ mix_a + rng.normal(size=16)).astype(np.float32)
    b = (rng.normal(size=(30, 16)) @ mix_b + rng.normal(size=16)).astype(np.float32)
    out["fid.features_a"], out["fid.features_b"] = torch.from_numpy(a), torch.from_numpy(b)
    out["fid.scipy"] = torch.tensor([frechet(a, b)])

    resized = [images(rng, 1, 27, 31)[0], images(rng, 1, 17, 20)[0], images(rng, 1, 30, 24)[0],
               images(rng, 1, 24, 26, channels=1)[0]]
    pil = [Image.fromarray(r) if r.shape[2] == 3 else Image.fromarray(r[:, :, 0], mode="L")
           for r in resized]
    for k, r in enumerate(resized):
        out[f"resized.{k}.image"] = torch.from_numpy(r)
    out["resized.pixel_values"] = processor(pil, return_tensors="pt")["pixel_values"]
    bilinear = CLIPImageProcessorPil(size={"shortest_edge": SIZE}, resample=2,
                                     crop_size={"height": SIZE, "width": SIZE})
    out["resized.bilinear_pixel_values"] = bilinear(pil, return_tensors="pt")["pixel_values"]

    tensors = {k: v.contiguous() if v.dtype == torch.uint8 else v.float().contiguous()
               for k, v in out.items()}
    save_file(tensors, os.path.join(ROOT, "clip-reference.safetensors"),
              # One key: safetensors writes several in no fixed order.
              metadata={"fixture": json.dumps({
                  "prompts": PROMPTS, "transformers": __import__("transformers").__version__,
                  "torch": torch.__version__, "scipy": scipy.__version__,
                  "pillow": Image.__version__}, sort_keys=True)})
    print("clip score per image", per_image.round(3), "score", out["clip_score"].item())
    print("clip fid", out["clip_fid"].item(), "fid", out["fid.scipy"].item())
    for name in sorted(os.listdir(FOLDER)):
        print(name, os.path.getsize(os.path.join(FOLDER, name)))
    print("reference", os.path.getsize(os.path.join(ROOT, "clip-reference.safetensors")))


if __name__ == "__main__":
    main()
