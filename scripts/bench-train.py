#!/usr/bin/python3
"""PyTorch eager reference for BenchmarkTrainStep (tune/bench_test.go): one APER-adapter
training step of ViT-Ti/16 at 224 (forward, backward to the adapters and the cosine head,
SGD with momentum and weight decay), batch 32 (or --batch N), on the same checkpoint, with the timm-structured
ViT of models/vit/testdata/make_reference.py. Prints seconds per step (median), images/s and
CPU-seconds per step (process time: on a shared machine it moves far less than wall time).

usage: bench-train.py CHECKPOINT.safetensors [THREADS] [STEPS] [--forward] [--batch N]
Needs Debian's python3-torch 1.13 and numpy; used only for measurements, never by cl.
"""
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models", "vit", "testdata"))
import make_reference as ref  # noqa: E402


def load(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or k.startswith("head."):
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy())
    return out


def main():
    args = sys.argv[1:]
    forward_only = "--forward" in args
    B = 32
    if "--batch" in args:
        i = args.index("--batch")
        B = int(args[i + 1])
        del args[i:i + 2]
    args = [a for a in args if a != "--forward"]
    path = args[0]
    threads = int(args[1]) if len(args) > 1 else 2
    steps = int(args[2]) if len(args) > 2 else 5
    torch.set_num_threads(threads)
    ref.IMG, ref.PATCH, ref.WIDTH, ref.DEPTH, ref.HEADS, ref.MLP = 224, 16, 192, 12, 3, 768
    ref.BOTTLENECK, ref.SCALE = 64, 0.1
    model = ref.ViT().eval()
    sd = load(path)
    sd["head.weight"], sd["head.bias"] = model.head.weight.data, model.head.bias.data
    model.load_state_dict(sd)
    for p in model.parameters():
        p.requires_grad_(False)
    C, L, W, R = 10, 12, 192, 64
    g = torch.Generator().manual_seed(1)
    x = torch.rand((B, 3, 224, 224), generator=g)
    y = torch.arange(B) % C
    if forward_only:
        with torch.no_grad():
            model(x)
            times, cpus = [], []
            for _ in range(steps):
                t0, c0 = time.perf_counter(), time.process_time()
                model(x)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
    else:
        params = {
            "dw": ((torch.rand((L, W, R), generator=g) * 2 - 1) / math.sqrt(W)).requires_grad_(),
            "db": torch.zeros(L, R, requires_grad=True),
            "uw": torch.zeros(L, R, W, requires_grad=True),
            "ub": torch.zeros(L, W, requires_grad=True),
            "hw": (torch.rand((C, W), generator=g) - 0.5).requires_grad_(),
            "hs": torch.tensor([16.0], requires_grad=True),
        }
        opt = torch.optim.SGD(list(params.values()), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            f = model(x, "adapter", {"adapter_down_w": params["dw"], "adapter_down_b": params["db"],
                                     "adapter_up_w": params["uw"], "adapter_up_b": params["ub"]})["features"]
            fn = f / torch.sqrt((f * f).sum(-1, keepdim=True) + 1e-24)
            w = params["hw"]
            wn = w / torch.sqrt((w * w).sum(-1, keepdim=True) + 1e-24)
            loss = torch.nn.functional.cross_entropy((fn @ wn.t()) * params["hs"], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        step()
        times, cpus = [], []
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    med, cpu = statistics.median(times), statistics.median(cpus)
    print(f"torch {'forward' if forward_only else 'train step'}: {med:.3f} s per batch of {B}, {B / med:.1f} images/s, "
          f"{cpu:.3f} CPU-s per batch (medians of {steps}, {threads} threads)")


if __name__ == "__main__":
    main()
