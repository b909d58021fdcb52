"""Fixture for duo's image similarity: scikit-image's SSIM (7x7 uniform windows, sample
covariance, data range 255, on BT.601 luma) and PSNR on pairs of small RGB images.

  tools/.venv-models/bin/python tools/make_similarity_fixture.py

Writes Tests/EvaluationTests/Fixtures/similarity/: a.png, b-N.png and expected.json.
"""

import json
import os

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "EvaluationTests", "Fixtures", "similarity")


def luma(x):
    x = x.astype(np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    a[8:24, 8:24] = [200, 40, 40]  # some structure besides noise
    Image.fromarray(a).save(os.path.join(OUT, "a.png"))
    expected = []
    for n, noise in enumerate([4, 20, 80]):
        b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, size=a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(b).save(os.path.join(OUT, f"b-{n}.png"))
        expected.append({
            "file": f"b-{n}.png",
            "ssim": structural_similarity(luma(a), luma(b), win_size=7, data_range=255),
            "psnr": peak_signal_noise_ratio(a, b, data_range=255),
        })
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(expected)


if __name__ == "__main__":
    main()
