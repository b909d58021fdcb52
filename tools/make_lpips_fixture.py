"""Fixture for duo's LPIPS: distances computed by the lpips package's own forward (0.1.4,
LPIPS(net='vgg'), version 0.1, normalize=True for images in [0, 1]).

  tools/.venv-models/bin/python -m pip install lpips==0.1.4 torchvision
  tools/.venv-models/bin/python tools/make_lpips_fixture.py

VGG16's ImageNet weights are 58 MB, downloaded by torchvision: neither reachable here nor
small enough to commit. So lpips builds its model with a random trunk (pnet_rand=True) and
the linear heads its wheel ships, and then each of the trunk's convolutions is swapped for
a narrow one of the same kind (3x3, padding 1, seeded) and each head for the first C
channels of the shipped one; lpips' forward runs unchanged on that model. The weights file
is its state_dict saved the way docs/cli.md tells users to save the real one.

Writes Tests/EvaluationTests/Fixtures/lpips/:
  weights.safetensors    the narrow model's state_dict, keys as lpips names them
  reference.safetensors  images.SET.a/b [N, H, W, 3] uint8 (RGB), distance.SET [N] and
                         layers.SET [N, 5] (lpips' per-layer terms, retPerLayer=True),
                         SET "square" (64x64) and "odd" (50x70: VGG's pools round down)
"""

import os

import lpips
import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(
    os.path.dirname(__file__), "..", "Tests", "EvaluationTests", "Fixtures", "lpips")

# Output width of each convolution, by torchvision's features index; they vary within and
# across slices so that a reader mixing up widths fails.
WIDTHS = {0: 4, 2: 5, 5: 6, 7: 6, 10: 7, 12: 7, 14: 8, 17: 8, 19: 7, 21: 8, 24: 6, 26: 6, 28: 5}


def narrowed(model):
    """Swaps every trunk convolution and linear head of `model` for a narrow one."""
    torch.manual_seed(22)
    width = 3
    last = []
    for s in range(1, 6):
        slice_ = getattr(model.net, f"slice{s}")
        for name, module in list(slice_.named_children()):
            if not isinstance(module, torch.nn.Conv2d):
                continue
            conv = torch.nn.Conv2d(width, WIDTHS[int(name)], 3, stride=1, padding=1)
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            torch.nn.init.uniform_(conv.bias, -0.1, 0.1)
            slice_._modules[name] = conv
            width = WIDTHS[int(name)]
        last.append(width)
    for k, channels in enumerate(last):
        shipped = getattr(model, f"lin{k}").model[1].weight.detach()
        head = torch.nn.Conv2d(channels, 1, 1, stride=1, padding=0, bias=False)
        head.weight.data.copy_(shipped[:, :channels])
        getattr(model, f"lin{k}").model._modules["1"] = head
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def images(rng, n, h, w):
    """n structured RGB images: gradients, a bright rectangle and noise."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.zeros((n, h, w, 3), dtype=np.float64)
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi, size=3)
        for c in range(3):
            out[i, ..., c] = 128 + 90 * np.sin(x / (5 + 3 * c) + y / (7 + i) + phase[c])
        top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
        out[i, top:top + h // 3, left:left + w // 3] = rng.uniform(0, 255, size=3)
        out[i] += rng.normal(0, 12, size=(h, w, 3))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pairs(rng, n, h, w):
    """(a, b): b is a with mild noise, with strong noise, then another image."""
    a = images(rng, n, h, w)
    b = a.astype(np.float64).copy()
    for i in range(n):
        if i == n - 1 and n > 1:
            b[i] = images(rng, 1, h, w)[0]
        else:
            b[i] += rng.normal(0, 6 + 30 * i, size=(h, w, 3))
    return a, np.clip(np.rint(b), 0, 255).astype(np.uint8)


def to_unit(pixels):
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255


def main():
    os.makedirs(OUT, exist_ok=True)
    model = narrowed(lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False))
    state = model.state_dict()
    # As docs/cli.md's recipe: clone, since lin0..4 and lins.0..4 share their tensors.
    save_file({k: v.clone() for k, v in state.items()}, os.path.join(OUT, "weights.safetensors"))

    rng = np.random.default_rng(22)
    reference = {}
    for name, (n, h, w) in {"square": (3, 64, 64), "odd": (1, 50, 70)}.items():
        a, b = pairs(rng, n, h, w)
        with torch.no_grad():
            total, layers = model(to_unit(a), to_unit(b), retPerLayer=True, normalize=True)
            # The norms lpips divides by: a pixel whose features nearly cancel would make the
            # fixture fragile (all zero is fine: both sides give 0).
            outs = model.net(model.scaling_layer(2 * to_unit(a) - 1))
            norms = torch.cat([o.pow(2).sum(1).sqrt().flatten() for o in outs])
            smallest = float(norms[norms > 0].min())
        reference[f"images.{name}.a"] = torch.from_numpy(a)
        reference[f"images.{name}.b"] = torch.from_numpy(b)
        reference[f"distance.{name}"] = total.reshape(n).clone()
        reference[f"layers.{name}"] = torch.cat([l.reshape(n, 1) for l in layers], 1)
        print(name, total.reshape(n).tolist(), "smallest feature norm", smallest)
    save_file(reference, os.path.join(OUT, "reference.safetensors"))
    print(sorted(state.keys()))


if __name__ == "__main__":
    main()
