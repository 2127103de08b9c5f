#!/usr/bin/python3
"""Golden for tune.Train: a few SGD steps of APER's first-session training on the tiny
timm-structured ViT of models/vit/testdata (AdaptFormer adapters + cosine head, cross-entropy),
computed with torch autograd and torch.optim, to compare against the Go training loop
(gradient graphs on ONNX Runtime + tune/optim).

Run from the repository root:  /usr/bin/python3 testdata/tune/make_train_golden.py
Needs Debian's python3-torch 1.13 and numpy. Deterministic. Writes testdata/tune/train_golden.safetensors:
  images      U8-as-F32 [N,32,32,3] pixel values 0..255 (RGB, HWC), labels F32 [N] (0..C-1)
  init.<p>    initial value of every trained tensor (adapter_down_w [L,W,r], adapter_down_b [L,r],
              adapter_up_w [L,r,W], adapter_up_b [L,W], head.weight [C,W], head.sigma [1])
  final.<p>   the values after all steps
  loss        F32 [steps] the mini-batch loss at every step
Metadata "config": batch, epochs, lr, momentum, weight_decay (SGD, CosineAnnealingLR stepped once per epoch,
eta_min 0, no warm-up; batches in row order, no shuffling, no augmentation; inputs = pixels/255).
"""
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "models", "vit", "testdata"))
import make_reference as ref  # noqa: E402

N, C, BATCH, EPOCHS = 16, 3, 8, 2
LR, MOMENTUM, WD = 0.05, 0.9, 5e-4
R = ref.BOTTLENECK  # 8


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy())
    return out


def main():
    torch.manual_seed(0)
    model = ref.ViT().eval()
    sd = read_safetensors(os.path.join(ROOT, "models", "vit", "testdata", "vit.safetensors"))
    model.load_state_dict(sd)
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(7)
    L, W = ref.DEPTH, ref.WIDTH
    bound = 1 / math.sqrt(W)
    params = {
        "adapter_down_w": (torch.rand((L, W, R), generator=g) * 2 - 1) * bound,
        "adapter_down_b": torch.zeros(L, R),
        # non-zero up weights so the adapters act from the first step
        "adapter_up_w": 0.05 * torch.randn((L, R, W), generator=g),
        "adapter_up_b": torch.zeros(L, W),
        "head.weight": (torch.rand((C, W), generator=g) * 2 - 1) * bound,
        "head.sigma": torch.tensor([4.0]),
    }
    init = {k: v.clone() for k, v in params.items()}
    for v in params.values():
        v.requires_grad_(True)
    images = torch.randint(0, 256, (N, 32, 32, 3), generator=g, dtype=torch.uint8)
    labels = torch.arange(N) % C
    x_all = images.permute(0, 3, 1, 2).float() / 255.0
    names = list(params)
    opt = torch.optim.SGD([params[k] for k in names], lr=LR, momentum=MOMENTUM, weight_decay=WD)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS, eta_min=0)
    losses = []
    for _ in range(EPOCHS):
        for s in range(0, N, BATCH):
            x, y = x_all[s:s + BATCH], labels[s:s + BATCH]
            f = model(x, "adapter", {k: params[k] for k in names if k.startswith("adapter")})["features"]
            fn = f / torch.sqrt((f * f).sum(-1, keepdim=True) + 1e-24)
            w = params["head.weight"]
            wn = w / torch.sqrt((w * w).sum(-1, keepdim=True) + 1e-24)
            logits = (fn @ wn.t()) * params["head.sigma"]
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sched.step()
    out = {"images": images.float().numpy(), "labels": labels.float().numpy(), "loss": np.array(losses, np.float32)}
    for k in names:
        out["init." + k] = init[k].numpy()
        out["final." + k] = params[k].detach().numpy()
    ref.write_safetensors(os.path.join(HERE, "train_golden.safetensors"), out,
                          {"config": json.dumps({"batch": BATCH, "epochs": EPOCHS, "lr": LR, "momentum": MOMENTUM,
                                                 "weight_decay": WD, "bottleneck": R})})
    print("losses", losses)


if __name__ == "__main__":
    main()
