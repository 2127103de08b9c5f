#!/usr/bin/python3
"""Writes a ViT-B/16 (224) backbone with RANDOM weights, for speed benchmarks only.

Usage: /usr/bin/python3 scripts/make-vit-b16.py OUT.onnx [--seed 0] [--batch-dynamic]

Same graph as timm's vit_base_patch16_224 with num_classes=0 (docs/METHODS.md §4): patch 16, 197 tokens, width 768,
depth 12, 12 heads, MLP 3072, qkv bias, pre-norm, LayerNorm eps 1e-6, exact GELU, feature = CLS after the final
LayerNorm (768-d); 85,798,656 parameters (343 MB). Exported with torch.onnx.export, opset 17, dynamic batch, and
the cl manifest for the ViT-B/16-IN21K protocol (bicubic 256, crop 224, [0,1], no mean/std).
The features are meaningless (random weights); for real ones export the pretrained model (docs/MODELS.md).
Needs torch and onnx (Debian: python3-torch, python3-onnx). Never commit the output.
"""
import argparse
import json
import os
import sys

import onnx
import torch
import torch.nn as nn



class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, img=224, patch=16, dim=768, depth=12, heads=12, hidden=3072):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = ViT().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 or name in ("cls_token", "pos_embed"):
                nn.init.trunc_normal_(p, std=0.02)
    n = sum(p.numel() for p in model.parameters())
    print("parameters:", n, file=sys.stderr)
    tmp = a.out + ".tmp"
    torch.onnx.export(model, torch.rand(1, 3, 224, 224), tmp, opset_version=17,
                      input_names=["input"], output_names=["features"],
                      dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}})
    m = onnx.load(tmp)
    d = m.graph.output[0].type.tensor_type.shape.dim[1]
    d.Clear()
    d.dim_value = 768
    manifest = {"input": "input", "output": "features",
                "preprocess": {"resize": 256, "interpolation": "bicubic", "crop": 224},
                "backbone": "ViT-B/16 RANDOM weights (seed %d), for benchmarks only" % a.seed}
    onnx.helper.set_model_props(m, {"cl.manifest": json.dumps(manifest, separators=(",", ":"))})
    m.producer_name = "cl scripts/make-vit-b16.py"
    onnx.save(m, tmp)
    os.replace(tmp, a.out)
    print("wrote", a.out, os.path.getsize(a.out), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
