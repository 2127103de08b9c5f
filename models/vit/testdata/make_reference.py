#!/usr/bin/python3
"""PyTorch reference for models/vit: a timm-structured ViT (timm v0.6.12
VisionTransformer layout and state_dict key names; timm itself is not needed)
with seeded random weights, its checkpoint in both forms cl imports, and golden
outputs of the plain model and of every graph variant with non-zero parameters.

Run from the repository root:  /usr/bin/python3 models/vit/testdata/make_reference.py
Needs torch 1.13 and numpy (Debian python3-torch, python3-numpy). Deterministic.

With --vitb DIR it instead writes a ViT-B/16 (224, width 768, depth 12, heads 12, MLP 3072) with random
weights for the parity and speed checks of docs/VIT.md (~1 GB, never committed): DIR/vitb.safetensors,
DIR/vitb_torch.onnx (torch.onnx.export, opset 17, dynamic batch) and DIR/vitb_golden.safetensors
("input" [4,3,224,224], "features" [4,768]).

Writes into models/vit/testdata/:
  vit.safetensors   timm key names (patch_embed.proj.weight, blocks.{i}.attn.qkv.weight, ...,
                    plus head.weight/head.bias, which the importer ignores), F32
  vit.npz           the same weights under Google's JAX names (embedding/kernel HWIO,
                    Transformer/encoderblock_{i}/MultiHeadDotProductAttention_1/query/kernel
                    [W,heads,hd], ...), as timm's _load_weights reads them
  golden.safetensors  "input" [N,3,S,S]; "plain.features" [N,W]; for each variant V the
                    graph inputs "V.<input name>" and outputs "V.features" (and
                    "prompt.prompt_mean")

Variant semantics (docs/METHODS.md §2.2, §2.6-2.8), written the way LAMDA-PILOT does it:
  prompt       L2P: sequence [CLS, p prompts, patches]; prompts get the CLS position
               embedding; prompt_mean = mean of the prompt outputs after the final LN.
               Input "prompt" [N,p,W] (per sample).
  vpt-shallow  VPT: p tokens appended after the patches (no pos-embed). Input "vpt" [p,W].
  vpt-deep     VPT deep: a fresh set of p tokens appended before each chosen block and
               dropped after it. Input "vpt" [len(layers),p,W].
  prefix       DualPrompt/CODA prefix tuning: per chosen layer, p keys and p values
               prepended to K and V (after the qkv projection). Input "prefix"
               [N,len(layers),2,p,W] (per sample).
  adapter      AdaptFormer parallel: out = x' + MLP(LN2 x') + s*Up(ReLU(Down(x'))).
               Inputs adapter_down_w [L,W,r], adapter_down_b [L,r], adapter_up_w [L,r,W],
               adapter_up_b [L,W] (x @ w orientation).
  ssf          y = x*scale + shift after patch projection, LN1, qkv, attn proj, LN2, fc1,
               fc2 and the final LN. Inputs ssf_patch [2,W], ssf_norm [2,W], ssf_ln1/ssf_proj/
               ssf_ln2/ssf_fc2 [L,2,W], ssf_qkv [L,2,3W], ssf_fc1 [L,2,M]; row 0 = scale, 1 = shift.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
IMG, PATCH, WIDTH, DEPTH, HEADS, MLP = 32, 8, 48, 3, 3, 128
if len(sys.argv) == 3 and sys.argv[1] == "--vitb":
    IMG, PATCH, WIDTH, DEPTH, HEADS, MLP = 224, 16, 768, 12, 12, 3072
N = 2
P_TOKENS = 3
PREFIX_LAYERS = [0, 2]
BOTTLENECK, SCALE = 8, 0.1


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, prefix=None, ssf=None):
        B, T, C = x.shape
        qkv = self.qkv(x)
        if ssf is not None:
            qkv = qkv * ssf["qkv"][0] + ssf["qkv"][1]
        qkv = qkv.reshape(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if prefix is not None:  # [B,2,p,C] -> keys/values [B,heads,p,hd] (PreT_Attention)
            p = prefix.shape[2]
            pk = prefix[:, 0].reshape(B, p, self.heads, C // self.heads).permute(0, 2, 1, 3)
            pv = prefix[:, 1].reshape(B, p, self.heads, C // self.heads).permute(0, 2, 1, 3)
            k = torch.cat([pk, k], dim=2)
            v = torch.cat([pv, v], dim=2)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, T, C)
        x = self.proj(x)
        if ssf is not None:
            x = x * ssf["proj"][0] + ssf["proj"][1]
        return x


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf GELU
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, ssf=None):
        h = self.fc1(x)
        if ssf is not None:
            h = h * ssf["fc1"][0] + ssf["fc1"][1]
        h = self.fc2(self.act(h))
        if ssf is not None:
            h = h * ssf["fc2"][0] + ssf["fc2"][1]
        return h


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x, prefix=None, adapter=None, ssf=None):
        h = self.norm1(x)
        if ssf is not None:
            h = h * ssf["ln1"][0] + ssf["ln1"][1]
        x = x + self.attn(h, prefix=prefix, ssf=ssf)
        h = self.norm2(x)
        if ssf is not None:
            h = h * ssf["ln2"][0] + ssf["ln2"][1]
        out = x + self.mlp(h, ssf=ssf)
        if adapter is not None:  # AdaptFormer parallel adapter on x' (vit_adapter.py)
            dw, db, uw, ub = adapter
            out = x + (self.mlp(h, ssf=ssf) + SCALE * (torch.relu(x @ dw + db) @ uw + ub))
        return out


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, WIDTH, kernel_size=PATCH, stride=PATCH, bias=True)


class ViT(nn.Module):
    """timm v0.6.12 VisionTransformer layout, global_pool='token', class_token=True."""

    def __init__(self):
        super().__init__()
        n = (IMG // PATCH) ** 2
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, WIDTH))
        self.blocks = nn.Sequential(*[Block(WIDTH, HEADS, MLP) for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)
        self.head = nn.Linear(WIDTH, 5)  # present in checkpoints, ignored by cl

    def forward(self, x, variant="plain", params=None):
        B = x.shape[0]
        x = self.patch_embed.proj(x)
        if variant == "ssf":
            s = params["ssf_patch"]
            x = x * s[0].reshape(1, -1, 1, 1) + s[1].reshape(1, -1, 1, 1)
        x = x.flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(B, -1, -1)
        pos = self.pos_embed
        if variant == "prompt":  # [CLS, prompts, patches]; prompts reuse the CLS position
            p = params["prompt"]
            x = torch.cat([cls, p, x], dim=1)
            pos = torch.cat([pos[:, :1], pos[:, :1].expand(1, p.shape[1], -1), pos[:, 1:]], dim=1)
            x = x + pos
        else:
            x = torch.cat([cls, x], dim=1) + pos
        if variant == "vpt-shallow":
            x = torch.cat([x, params["vpt"].unsqueeze(0).expand(B, -1, -1)], dim=1)
        for i, blk in enumerate(self.blocks):
            kw = {}
            if variant == "prefix" and i in PREFIX_LAYERS:
                kw["prefix"] = params["prefix"][:, PREFIX_LAYERS.index(i)]
            if variant == "adapter":
                kw["adapter"] = (params["adapter_down_w"][i], params["adapter_down_b"][i],
                                 params["adapter_up_w"][i], params["adapter_up_b"][i])
            if variant == "ssf":
                kw["ssf"] = {k: params["ssf_" + k][i] for k in ("ln1", "qkv", "proj", "ln2", "fc1", "fc2")}
            if variant == "vpt-deep":
                T = x.shape[1]
                x = torch.cat([x, params["vpt"][i].unsqueeze(0).expand(B, -1, -1)], dim=1)
                x = blk(x, **kw)[:, :T]
            else:
                x = blk(x, **kw)
        x = self.norm(x)
        if variant == "ssf":
            x = x * params["ssf_norm"][0] + params["ssf_norm"][1]
        out = {"features": x[:, 0]}
        if variant == "prompt":
            out["prompt_mean"] = x[:, 1:1 + params["prompt"].shape[1]].mean(dim=1)
        return out


def init_weights(model, g):
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


def variant_params(g):
    def rn(*shape, std=0.5):
        return std * torch.randn(shape, generator=g)
    L, W, M, p, r = DEPTH, WIDTH, MLP, P_TOKENS, BOTTLENECK

    def ssf(*shape):  # [.., 2, dim]: scale ~ N(1, 0.2), shift ~ N(0, 0.2)
        t = rn(*shape, std=0.2)
        t[..., 0, :] += 1.0
        return t
    return {
        "prompt": {"prompt": rn(N, p, W)},
        "vpt-shallow": {"vpt": rn(p, W)},
        "vpt-deep": {"vpt": rn(L, p, W)},
        "prefix": {"prefix": rn(N, len(PREFIX_LAYERS), 2, p, W)},
        "adapter": {"adapter_down_w": rn(L, W, r, std=1 / math.sqrt(W)), "adapter_down_b": rn(L, r, std=0.1),
                    "adapter_up_w": rn(L, r, W, std=1.0), "adapter_up_b": rn(L, W, std=0.5)},
        "ssf": {"ssf_patch": ssf(2, W), "ssf_ln1": ssf(L, 2, W), "ssf_qkv": ssf(L, 2, 3 * W),
                "ssf_proj": ssf(L, 2, W), "ssf_ln2": ssf(L, 2, W), "ssf_fc1": ssf(L, 2, M),
                "ssf_fc2": ssf(L, 2, W), "ssf_norm": ssf(2, W)},
    }


def write_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer (8-byte LE header length, JSON header, raw LE data)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        b = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)


def to_jax(sd):
    """timm state_dict -> Google's npz names and layouts (inverse of timm's _load_weights)."""
    H, W = HEADS, WIDTH
    hd = W // H
    n = lambda t: t.detach().numpy().astype(np.float32)
    out = {
        "embedding/kernel": n(sd["patch_embed.proj.weight"]).transpose(2, 3, 1, 0),  # OIHW -> HWIO
        "embedding/bias": n(sd["patch_embed.proj.bias"]),
        "cls": n(sd["cls_token"]),
        "Transformer/posembed_input/pos_embedding": n(sd["pos_embed"]),
        "Transformer/encoder_norm/scale": n(sd["norm.weight"]),
        "Transformer/encoder_norm/bias": n(sd["norm.bias"]),
        "head/kernel": n(sd["head.weight"]).T,
        "head/bias": n(sd["head.bias"]),
    }
    for i in range(DEPTH):
        b, m = f"Transformer/encoderblock_{i}/", f"Transformer/encoderblock_{i}/MultiHeadDotProductAttention_1/"
        out[b + "LayerNorm_0/scale"] = n(sd[f"blocks.{i}.norm1.weight"])
        out[b + "LayerNorm_0/bias"] = n(sd[f"blocks.{i}.norm1.bias"])
        out[b + "LayerNorm_2/scale"] = n(sd[f"blocks.{i}.norm2.weight"])
        out[b + "LayerNorm_2/bias"] = n(sd[f"blocks.{i}.norm2.bias"])
        qkv_w = n(sd[f"blocks.{i}.attn.qkv.weight"])  # [3W, W] (out, in)
        qkv_b = n(sd[f"blocks.{i}.attn.qkv.bias"])
        for j, name in enumerate(("query", "key", "value")):
            out[m + name + "/kernel"] = qkv_w[j * W:(j + 1) * W].T.reshape(W, H, hd).copy()
            out[m + name + "/bias"] = qkv_b[j * W:(j + 1) * W].reshape(H, hd).copy()
        out[m + "out/kernel"] = n(sd[f"blocks.{i}.attn.proj.weight"]).T.reshape(H, hd, W).copy()
        out[m + "out/bias"] = n(sd[f"blocks.{i}.attn.proj.bias"])
        out[b + "MlpBlock_3/Dense_0/kernel"] = n(sd[f"blocks.{i}.mlp.fc1.weight"]).T.copy()
        out[b + "MlpBlock_3/Dense_0/bias"] = n(sd[f"blocks.{i}.mlp.fc1.bias"])
        out[b + "MlpBlock_3/Dense_1/kernel"] = n(sd[f"blocks.{i}.mlp.fc2.weight"]).T.copy()
        out[b + "MlpBlock_3/Dense_1/bias"] = n(sd[f"blocks.{i}.mlp.fc2.bias"])
    return out


def main():
    g = torch.Generator().manual_seed(2024)
    model = ViT().eval()
    init_weights(model, g)
    sd = model.state_dict()
    write_safetensors(os.path.join(HERE, "vit.safetensors"), {k: v.numpy() for k, v in sd.items()},
                      {"format": "pt"})
    np.savez(os.path.join(HERE, "vit.npz"), **to_jax(sd))

    x = torch.rand((N, 3, IMG, IMG), generator=g)
    golden = {"input": x.numpy()}
    with torch.no_grad():
        golden["plain.features"] = model(x)["features"].numpy()
        for variant, params in variant_params(g).items():
            out = model(x, variant, params)
            for k, v in params.items():
                golden[f"{variant}.{k}"] = v.numpy()
            for k, v in out.items():
                golden[f"{variant}.{k}"] = v.numpy()
            d = np.abs(out["features"].numpy() - golden["plain.features"]).max()
            assert d > 1e-2, f"{variant} does not change the features (max diff {d})"
    write_safetensors(os.path.join(HERE, "golden.safetensors"), golden,
                      {"config": json.dumps({"image": IMG, "patch": PATCH, "width": WIDTH, "depth": DEPTH,
                                             "heads": HEADS, "mlp": MLP, "tokens": P_TOKENS,
                                             "prefix_layers": PREFIX_LAYERS, "bottleneck": BOTTLENECK,
                                             "scale": SCALE})})


class Plain(nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, x):
        return self.vit(x)["features"]


def main_vitb(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(16)
    model = ViT().eval()
    init_weights(model, g)
    sd = model.state_dict()
    write_safetensors(os.path.join(out, "vitb.safetensors"), {k: v.numpy() for k, v in sd.items()})
    x = torch.rand((4, 3, IMG, IMG), generator=g)
    with torch.no_grad():
        feats = model(x)["features"].numpy()
    write_safetensors(os.path.join(out, "vitb_golden.safetensors"), {"input": x.numpy(), "features": feats})
    torch.onnx.export(Plain(model), x[:1], os.path.join(out, "vitb_torch.onnx"), opset_version=17,
                      input_names=["input"], output_names=["features"],
                      dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}}, do_constant_folding=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--vitb":
        main_vitb(sys.argv[2])
    else:
        main()
