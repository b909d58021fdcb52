"""NudeNet's own API on raw pixels: the reference the parity test holds detectors/nudenet to.

Tests/UnlearningTests/NudeNetParityTests.swift writes PNGs with duo's PNG writer and the
same pixels as raw RGB bytes. duo's detector reads the PNGs; this reads the raw bytes, so
neither PNG decoding nor colour order is shared with the code under test, and calls
`NudeDetector().detect` on the RGB array as DUO does, and on the channels reversed (what
NudeNet's model gets from a file path), so that the test sees whether colour order matters.

stdin: one JSON object per image, {"raw": PATH, "width": W, "height": H}.
stdout: one JSON object per image, {"raw": PATH, "rgb": [[CLASS, SCORE], ...], "bgr": [...]}.

    detectors/.venv/bin/python detectors/check_nudenet.py < images.jsonl
"""

import json
import sys

import numpy as np
from nudenet import NudeDetector


def detections(detector, pixels):
    return [[found["class"], found["score"]] for found in detector.detect(pixels)]


def main():
    detector = NudeDetector()
    for line in sys.stdin:
        if not line.strip():
            continue
        image = json.loads(line)
        with open(image["raw"], "rb") as raw:
            data = raw.read()
        rgb = np.frombuffer(data, np.uint8).reshape(image["height"], image["width"], 3)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        answer = {
            "raw": image["raw"],
            "rgb": detections(detector, rgb.copy()),
            "bgr": detections(detector, bgr),
        }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
