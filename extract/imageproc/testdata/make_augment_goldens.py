#!/usr/bin/python3
"""Golden files for the training augmentation of github.com/cl-dev/cl/extract/imageproc.

Run with Debian's Python 3 (python3-torchvision 0.14, Pillow 9.4, torch 1.13):

    cd extract/imageproc/testdata && /usr/bin/python3 make_augment_goldens.py

It writes into augment/:

  <image>.<filter>.<x>_<y>_<w>_<h>.<size>[.flip].npy
      uint8 [size, size, 3]: torchvision's F.resized_crop(img, top=y, left=x,
      height=h, width=w, [size, size], filter), then F.hflip when ".flip",
      for the RGB image img/<image> (Pillow's convert("RGB")).
  <image>.tensor.<x>_<y>_<w>_<h>.<size>.flip.npy
      float32 [3, size, size]: the same (bilinear) + hflip + ToTensor.
  boxes.json
      torchvision's RandomResizedCrop.get_params: fallback boxes for images
      whose every attempt must fail, and statistics of 40,000 draws per
      setting (fallback rate, mean and variance of the area fraction
      w·h/(W·H) and of log(w/h) over the non-fallback draws).

Seeded (torch.manual_seed): running it twice gives identical files.
"""
import json
import math
import os

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "augment")
os.makedirs(OUT, exist_ok=True)
assert torchvision.__version__.startswith("0.14"), torchvision.__version__

FILTERS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}

# (image, filter, (x, y, w, h), size, flip): down- and up-scaling boxes,
# thin boxes, the whole image, and a box already at the output size.
CROPS = [
    ("photo.jpg", "bilinear", (17, 9, 211, 158), 56, False),
    ("photo.jpg", "bilinear", (120, 40, 61, 90), 56, True),
    ("photo.jpg", "bicubic", (0, 0, 300, 200), 48, False),
    ("photo.jpg", "bicubic", (250, 3, 50, 197), 64, True),
    ("photo.jpg", "bilinear", (33, 44, 56, 56), 56, False),
    ("rgb.png", "bilinear", (5, 7, 30, 20), 40, True),
    ("rgb.png", "bicubic", (40, 0, 24, 48), 36, False),
    ("cifar32.png", "bilinear", (3, 2, 20, 27), 224, True),
    ("cifar32.png", "bicubic", (0, 0, 32, 32), 112, False),
    ("l.png", "bilinear", (1, 10, 49, 33), 32, True),
]


def crops():
    for name, filt, (x, y, w, h), size, flip in CROPS:
        img = Image.open(os.path.join(HERE, "img", name)).convert("RGB")
        out = F.resized_crop(img, y, x, h, w, [size, size], FILTERS[filt])
        if flip:
            out = F.hflip(out)
        tag = "%s.%s.%d_%d_%d_%d.%d%s.npy" % (name, filt, x, y, w, h, size, ".flip" if flip else "")
        np.save(os.path.join(OUT, tag), np.asarray(out, dtype=np.uint8))
    img = Image.open(os.path.join(HERE, "img", "photo.jpg")).convert("RGB")
    x, y, w, h, size = 120, 40, 61, 90, 56
    t = F.to_tensor(F.hflip(F.resized_crop(img, y, x, h, w, [size, size], InterpolationMode.BILINEAR)))
    np.save(os.path.join(OUT, "photo.jpg.tensor.%d_%d_%d_%d.%d.flip.npy" % (x, y, w, h, size)), t.numpy().astype(np.float32))


class FakeImage:
    """Only the size matters to get_params (F.get_image_size of a tensor)."""


def get_params(W, H, scale, ratio):
    return RandomResizedCrop.get_params(torch.empty(3, H, W), list(scale), list(ratio))


def stats(W, H, scale, ratio, n):
    calls = [0]
    real = torch.randint

    def counting(*a, **k):
        calls[0] += 1
        return real(*a, **k)

    torch.randint = counting
    fall = 0
    area, logr = [], []
    try:
        for _ in range(n):
            before = calls[0]
            i, j, h, w = get_params(W, H, scale, ratio)
            if calls[0] == before:  # no randint: the fallback
                fall += 1
                continue
            area.append(w * h / (W * H))
            logr.append(math.log(w / h))
    finally:
        torch.randint = real
    a, r = np.array(area), np.array(logr)
    return {"W": W, "H": H, "scale": list(scale), "ratio": list(ratio), "n": n, "fallback": fall,
            "area_mean": float(a.mean()), "area_var": float(a.var()),
            "logr_mean": float(r.mean()), "logr_var": float(r.var())}


def boxes():
    torch.manual_seed(1993)
    fallback = []
    for W, H, scale, ratio in [(1000, 50, (0.9, 1.0), (3 / 4, 4 / 3)), (50, 1000, (0.9, 1.0), (3 / 4, 4 / 3)),
                               (300, 200, (1.5, 2.0), (3 / 4, 4 / 3)), (41, 2000, (0.95, 1.0), (0.5, 0.7)),
                               (640, 481, (1.2, 1.3), (1.0, 1.0))]:
        i, j, h, w = get_params(W, H, scale, ratio)
        fallback.append({"W": W, "H": H, "scale": list(scale), "ratio": list(ratio), "box": [j, i, w, h]})
    pilot = ((0.05, 1.0), (3 / 4, 4 / 3))
    default = ((0.08, 1.0), (3 / 4, 4 / 3))
    settings = [(500, 375) + pilot, (32, 32) + pilot, (224, 224) + default, (1000, 50) + pilot, (60, 700) + default]
    st = [stats(W, H, s, r, 40000) for W, H, s, r in settings]
    with open(os.path.join(OUT, "boxes.json"), "w") as f:
        json.dump({"torchvision": torchvision.__version__, "fallback": fallback, "stats": st}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    crops()
    boxes()
