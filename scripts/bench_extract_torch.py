#!/usr/bin/python3
"""PyTorch eager reference for scripts/bench-extract.sh: the same ViT-B/16 (same random weights: the class and
initialisation of scripts/make-vit-b16.py, same seed) on the same JPEG ImageFolder.

Usage: /usr/bin/python3 scripts/bench_extract_torch.py IMAGES_DIR [--batch 32] [--threads 2] [--rounds 1] [--seed 0]

Prints one JSON line per round: torch pipeline img/s (PIL open + convert("RGB") + Resize(256, bicubic) +
CenterCrop(224) + ToTensor, then the model under torch.no_grad(), batches as cl does, images decoded in the main
thread as a DataLoader with num_workers=0 does) and torch inference-only img/s on ready tensors.
Needs torch, numpy and Pillow (Debian python3-torch, python3-numpy, python3-pil); no torchvision (the transforms
are written out with Pillow calls, as torchvision 0.14 makes them).
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def load_vit(seed):
    spec = importlib.util.spec_from_file_location("make_vit_b16", os.path.join(HERE, "make-vit-b16.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(seed)
    model = mod.ViT().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 or name in ("cls_token", "pos_embed"):
                torch.nn.init.trunc_normal_(p, std=0.02)
    return model


def preprocess(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:  # torchvision 0.14 Resize(256): shorter side 256, long = int(256 * long / short)
        ow, oh = 256, int(256 * h / w)
    else:
        ow, oh = int(256 * w / h), 256
    img = img.resize((ow, oh), Image.BICUBIC)
    left, top = int(round((ow - 224) / 2.0)), int(round((oh - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()).float().div(255)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_vit(a.seed)
    paths = []
    for cls in sorted(os.listdir(a.images)):
        d = os.path.join(a.images, cls)
        if os.path.isdir(d):
            paths += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.lower().endswith(".jpg")]
    n = len(paths)
    x = torch.rand(a.batch, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model(x[:2])  # warm-up
        for r in range(a.rounds):
            t0 = time.perf_counter()
            for i in range(0, n, a.batch):
                batch = torch.stack([preprocess(p) for p in paths[i:i + a.batch]])
                model(batch)
            t_pipe = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(0, n, a.batch):
                model(x[:min(a.batch, n - i)])
            t_inf = time.perf_counter() - t0
            print(json.dumps({"round": r, "images": n, "batch": a.batch, "threads": a.threads,
                              "torch_pipeline_img_s": round(n / t_pipe, 3), "torch_infer_img_s": round(n / t_inf, 3)}))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
