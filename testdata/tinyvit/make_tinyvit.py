#!/usr/bin/python3
"""Builds the tiny test ViT and its goldens (see README.md in this folder).

Run from the repository root:  /usr/bin/python3 testdata/tinyvit/make_tinyvit.py
Needs torch (1.13), onnx, Pillow and numpy (Debian: python3-torch, python3-onnx,
python3-pil, python3-numpy). Deterministic: seeded weights and images.

Writes into testdata/tinyvit/:
  tinyvit.onnx          the model: input "input" float32 [N,3,32,32] in [0,1],
                        output "features" float32 [N,32] (CLS after the final LN),
                        manifest in metadata_props["cl.manifest"]
  img_*.{jpg,png,gif,bmp}  six small test images in different modes
  images.txt            the order of the images in the .npy files below
  rgb_<stem>.npy        each image decoded by Pillow and .convert("RGB"): uint8 [H,W,3]
  inputs.npy            Pillow-preprocessed inputs, float32 [6,3,32,32]
  features.npy          torch features of inputs.npy, float32 [6,32]
"""
import json
import math
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
IMG, PATCH, WIDTH, DEPTH, HEADS, MLP = 32, 8, 32, 2, 2, 64
RESIZE, CROP = 36, 32


class Attention(nn.Module):  # timm VisionTransformer Attention (qkv_bias=True)
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
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf GELU, as timm's nn.GELU
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):  # pre-norm: x + Attn(LN1 x), x + MLP(LN2 x)
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, WIDTH, kernel_size=PATCH, stride=PATCH, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TinyViT(nn.Module):
    """timm VisionTransformer layout, global_pool='token', num_classes=0."""

    def __init__(self):
        super().__init__()
        n = (IMG // PATCH) ** 2
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, WIDTH))
        self.blocks = nn.Sequential(*[Block(WIDTH, HEADS, MLP) for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed
        x = self.blocks(x)
        x = self.norm(x)
        return x[:, 0]


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else WIDTH
                std = 0.5 if p.dim() == 3 else 1.0 / math.sqrt(fan_in)
                p.copy_(std * torch.randn(p.shape, generator=g))


def make_images(rng):
    """Six small images in different modes; returns [(filename, PIL image)]."""
    def rgb(h, w):
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin(x / 3.0 + y / 5.0)], -1)
        a = a + rng.normal(0, 20, a.shape)
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)

    out = []
    out.append(("img_rgb.jpg", Image.fromarray(rgb(40, 48), "RGB")))
    grey = rgb(45, 45)[:, :, 0]
    out.append(("img_grey.png", Image.fromarray(grey, "L")))
    out.append(("img_palette.gif", Image.fromarray(rgb(50, 38), "RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT)))
    rgba = np.concatenate([rgb(36, 36), rng.integers(0, 256, (36, 36, 1), dtype=np.uint8)], -1)
    out.append(("img_rgba.png", Image.fromarray(rgba, "RGBA")))
    # 40x32 (WxH) -> 45x36: the crop's left offset (45-32)/2 = 6.5 rounds half to even, to 6.
    out.append(("img_bmp.bmp", Image.fromarray(rgb(32, 40), "RGB")))
    # Non-square (71x26 WxH) -> 98x36, crop offset 33.
    out.append(("img_wide.png", Image.fromarray(rgb(26, 71), "RGB")))
    return out


def resize_shorter(img, size):
    # torchvision.transforms.Resize(size) on a PIL image (v0.14 F.resize):
    # the shorter side becomes size, the longer int(size * long / short).
    w, h = img.size
    if w <= h:
        ow, oh = size, int(size * h / w)
    else:
        oh, ow = size, int(size * w / h)
    if (ow, oh) == (w, h):
        return img
    return img.resize((ow, oh), Image.BICUBIC)


def center_crop(img, size):
    # torchvision CenterCrop: top = int(round((h - size) / 2.0)) (Python round: half to even).
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def preprocess(img):
    img = img.convert("RGB")
    img = center_crop(resize_shorter(img, RESIZE), CROP)
    a = np.asarray(img, dtype=np.uint8).astype(np.float32) / 255.0  # ToTensor
    return a.transpose(2, 0, 1).copy()


def main():
    torch.manual_seed(0)
    model = TinyViT().eval()
    init_weights(model, seed=1993)

    rng = np.random.default_rng(7)
    names, inputs = [], []
    for fname, img in make_images(rng):
        path = os.path.join(HERE, fname)
        img.save(path)
        with Image.open(path) as im:  # preprocess what was written (JPEG is lossy)
            im.load()
            stem = os.path.splitext(fname)[0]
            np.save(os.path.join(HERE, "rgb_%s.npy" % stem), np.asarray(im.convert("RGB"), dtype=np.uint8))
            inputs.append(preprocess(im))
        names.append(fname)
    x = np.stack(inputs).astype(np.float32)
    with torch.no_grad():
        feats = model(torch.from_numpy(x)).numpy().astype(np.float32)
    np.save(os.path.join(HERE, "inputs.npy"), x)
    np.save(os.path.join(HERE, "features.npy"), feats)
    with open(os.path.join(HERE, "images.txt"), "w") as f:
        f.write("\n".join(names) + "\n")

    onnx_path = os.path.join(HERE, "tinyvit.onnx")
    torch.onnx.export(model, torch.from_numpy(x[:2]), onnx_path, opset_version=17,
                      input_names=["input"], output_names=["features"],
                      dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}},
                      do_constant_folding=True)
    m = onnx.load(onnx_path)
    manifest = {"input": "input", "output": "features",
                "preprocess": {"resize": RESIZE, "interpolation": "bicubic", "crop": CROP},
                "backbone": "tiny ViT for tests (timm layout, patch 8, 32px, width 32, depth 2, random weights seed 1993)"}
    onnx.helper.set_model_props(m, {"cl.manifest": json.dumps(manifest, separators=(",", ":"))})
    m.producer_name = "cl testdata/tinyvit/make_tinyvit.py"
    # torch names the feature width symbolically; it is WIDTH.
    d = m.graph.output[0].type.tensor_type.shape.dim[1]
    d.Clear()
    d.dim_value = WIDTH
    onnx.checker.check_model(m)
    onnx.save(m, onnx_path)
    print("wrote", onnx_path, os.path.getsize(onnx_path), "bytes; features", feats.shape,
          "std %.3f" % feats.std(), file=sys.stderr)


if __name__ == "__main__":
    main()
