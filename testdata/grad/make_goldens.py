#!/usr/bin/python3
"""torch autograd goldens for tune/grad (reverse-mode differentiation of ONNX graphs).

Run from the repository root:  /usr/bin/python3 testdata/grad/make_goldens.py
Needs torch 1.13 and numpy (Debian python3-torch, python3-numpy). Deterministic.
All references are computed in float64.

Writes into testdata/grad/:
  ops.safetensors  one case per operator rule (broadcasting included). Metadata "cases" is a JSON
                   list of {name, op, attrs, inputs: [{name, kind: float|int|bool, train}], outputs,
                   dtype: double|float}. Tensors "<case>/<input>" (F64 floats, I64 ints, U8 bools),
                   "<case>/R<k>" (F64, the weight of output k) and "<case>/grad/<input>" (F64) for the
                   trainable inputs, where loss = sum_k sum(y_k * R_k).
  vit.safetensors  whole tiny ViTs (models/vit/testdata's timm-structured reference and its weights
                   vit.safetensors) in every variant with a head and a masked cross-entropy. Metadata
                   "cases" is a JSON list of {name, variant, head, mask, range, trainable, term, features}
                   (features: the head's input, "features" or L2P's "prompt_mean").
                   Tensors: "input" [N,3,32,32] and "labels" [N] (shared), and per case
                   "<case>/<param>" (F32 values fed to the graph), "<case>/class_mask", "<case>/loss"
                   (F64 [1]), "<case>/logits" (F64) and "<case>/grad/<name>" (F64), names as the Go
                   graph has them (Go's layouts: head.weight [W,C] for the linear head, qkv weight
                   transposed, "cls_token_pos" = cls_token + pos_embed[0], "pos_embed.patches").
"""
import importlib.util
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VIT_DIR = os.path.join(ROOT, "models", "vit", "testdata")

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # one summation order: byte-identical files on every machine


def write_safetensors(path, tensors, metadata=None):
    """safetensors writer for F32, F64, I64 and U8 (bool) arrays."""
    codes = {np.dtype("float32"): ("F32", "<f4"), np.dtype("float64"): ("F64", "<f8"),
             np.dtype("int64"): ("I64", "<i8"), np.dtype("uint8"): ("U8", "u1"), np.dtype("bool"): ("U8", "u1")}
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.asarray(tensors[name]).copy(order="C")  # ascontiguousarray would make scalars 1-D
        code, le = codes[a.dtype]
        b = a.astype(le).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}[v["dtype"]]
        out[k] = np.frombuffer(data[a:b], dtype=dt).reshape(v["shape"]).copy()
    return out


# ---------------------------------------------------------------- per-rule cases

def op_cases(g):
    def rn(*shape, off=0.0, scale=1.0):
        return off + scale * torch.randn(shape, generator=g)

    cases = []

    def case(name, op, fn, inputs, attrs=None, nout=1, dtype="double"):
        cases.append(dict(name=name, op=op, fn=fn, inputs=inputs, attrs=attrs or {}, nout=nout, dtype=dtype))

    def T(name, x, train=True):
        return (name, "float", x, train)

    def I(name, v):
        return (name, "int", torch.tensor(v, dtype=torch.int64), False)

    def B(name, v):
        return (name, "bool", torch.tensor(v, dtype=torch.bool), False)

    case("add_bcast", "Add", lambda a, b: a + b, [T("a", rn(2, 3, 4)), T("b", rn(4))])
    case("add_both", "Add", lambda a, b: a + b, [T("a", rn(2, 1, 4)), T("b", rn(3, 1))])
    case("sub_bcast", "Sub", lambda a, b: a - b, [T("a", rn(3, 1)), T("b", rn(2, 1, 4))])
    case("mul_bcast", "Mul", lambda a, b: a * b, [T("a", rn(2, 3, 1)), T("b", rn(3, 4))])
    case("mul_one", "Mul", lambda a, b: a * b, [T("a", rn(2, 3)), T("b", rn(1))])  # rank-0 inputs cannot be fed from Go
    case("div_bcast", "Div", lambda a, b: a / b, [T("a", rn(2, 3)), T("b", rn(2, 1, off=2, scale=0.5))])
    case("pow_both", "Pow", lambda a, b: a ** b, [T("a", rn(2, 3, off=2, scale=0.5)), T("b", rn(3))])
    case("sqrt", "Sqrt", torch.sqrt, [T("x", rn(2, 3, off=2, scale=0.5))])
    case("erf", "Erf", torch.erf, [T("x", rn(3, 4))], dtype="float")
    case("relu", "Relu", torch.relu, [T("x", rn(3, 4))])
    case("tanh", "Tanh", torch.tanh, [T("x", rn(3, 4))])
    case("matmul_linear", "MatMul", torch.matmul, [T("a", rn(2, 3, 4)), T("b", rn(4, 5))])
    case("matmul_bcast", "MatMul", torch.matmul, [T("a", rn(2, 1, 3, 4)), T("b", rn(3, 4, 2))])
    case("gemm", "Gemm", lambda a, b, c: 0.5 * a @ b + 2 * c, [T("a", rn(3, 4)), T("b", rn(4, 2)), T("c", rn(2))],
         {"alpha": 0.5, "beta": 2.0})
    case("gemm_trans", "Gemm", lambda a, b, c: a.T @ b.T + c, [T("a", rn(4, 3)), T("b", rn(2, 4)), T("c", rn(3, 1))],
         {"transA": 1, "transB": 1})
    case("layernorm", "LayerNormalization", lambda x, s, b: F.layer_norm(x, (5,), s, b, 1e-5),
         [T("x", rn(2, 3, 5, scale=2, off=1)), T("s", rn(5)), T("b", rn(5))], {"axis": -1, "epsilon": 1e-5},
         dtype="float")
    case("layernorm_axis1", "LayerNormalization", lambda x, s, b: F.layer_norm(x, (3, 4), s, b, 1e-5),
         [T("x", rn(2, 3, 4)), T("s", rn(3, 4)), T("b", rn(3, 4))], {"axis": 1, "epsilon": 1e-5}, dtype="float")
    case("softmax", "Softmax", lambda x: torch.softmax(x, -1), [T("x", rn(2, 3, 4))], {"axis": -1})
    case("softmax_axis1", "Softmax", lambda x: torch.softmax(x, 1), [T("x", rn(2, 3, 4))], {"axis": 1})
    case("logsoftmax", "LogSoftmax", lambda x: torch.log_softmax(x, -1), [T("x", rn(3, 5))], {"axis": -1})
    case("reducesum", "ReduceSum", lambda x, ax: x.sum(dim=(0, 2)), [T("x", rn(2, 3, 4)), I("axes", [0, -1])],
         {"keepdims": 0})
    case("reducesum_keep", "ReduceSum", lambda x, ax: x.sum(dim=1, keepdim=True), [T("x", rn(2, 3, 4)), I("axes", [1])])
    case("reducemean", "ReduceMean", lambda x: x.mean(dim=1), [T("x", rn(2, 3, 4))], {"axes": [1], "keepdims": 0})
    case("reshape", "Reshape", lambda x, s: x.reshape(2, -1, 2), [T("x", rn(2, 3, 4)), I("shape", [0, -1, 2])])
    case("transpose", "Transpose", lambda x: x.permute(1, 2, 0), [T("x", rn(2, 3, 4))], {"perm": [1, 2, 0]})
    case("concat", "Concat", lambda a, b, c: torch.cat([a, b, c], 1),
         [T("a", rn(2, 1, 3)), T("b", rn(2, 2, 3), False), T("c", rn(2, 3, 3))], {"axis": 1})
    case("split", "Split", lambda x, s: torch.split(x, [1, 2, 3], -1), [T("x", rn(2, 6)), I("split", [1, 2, 3])],
         {"axis": -1}, nout=3)
    case("slice", "Slice", lambda x, st, en, ax: x[:, 1:4, -3:],
         [T("x", rn(2, 5, 4)), I("starts", [1, -3]), I("ends", [4, 100]), I("axes", [1, 2])])
    case("gather_scalar", "Gather", lambda x, i: x[:, 1], [T("x", rn(3, 2, 4)), I("i", 1)], {"axis": 1})
    case("gather_repeat", "Gather", lambda x, i: x[:, i], [T("x", rn(3, 4)), I("i", [[0, 2], [2, 3]])], {"axis": 1})
    case("gather_elements", "GatherElements", lambda x, i: torch.gather(x, 1, i),
         [T("x", rn(3, 4)), I("i", [[0, 0], [3, 1], [2, 2]])], {"axis": 1})
    case("unsqueeze", "Unsqueeze", lambda x, a: x.unsqueeze(0).unsqueeze(3), [T("x", rn(2, 3)), I("axes", [0, 3])])
    case("squeeze", "Squeeze", lambda x, a: x.squeeze(1), [T("x", rn(2, 1, 3)), I("axes", [1])])
    case("expand", "Expand", lambda x, s: x.expand(2, 3, 4), [T("x", rn(3, 1)), I("shape", [2, 1, 4])])
    case("where", "Where", lambda c, a, b: torch.where(c, a, b),
         [B("c", [[True], [False], [True]]), T("a", rn(3, 4)), T("b", rn(4))])
    case("identity", "Identity", lambda x: x, [T("x", rn(2, 3))])
    case("conv_patch", "Conv", lambda x, w, b: F.conv2d(x, w, b, stride=2),
         [T("x", rn(2, 3, 4, 6)), T("w", rn(5, 3, 2, 2)), T("b", rn(5))], {"kernel_shape": [2, 2], "strides": [2, 2]},
         dtype="float")
    return cases


def make_ops():
    g = torch.Generator().manual_seed(9)
    tensors, meta = {}, []
    for c in op_cases(g):
        name = c["name"]
        args = []
        for (n, kind, x, train) in c["inputs"]:
            if kind == "float":
                if c["dtype"] == "float":
                    x = x.float().double()  # the values the float32 graph sees
                x = x.clone().requires_grad_(train)
            args.append(x)
            a = x.detach().numpy()
            tensors[f"{name}/{n}"] = a.astype(np.uint8) if kind == "bool" else a
        ys = c["fn"](*args)
        if not isinstance(ys, (tuple, list)):
            ys = [ys]
        loss = 0
        for k, y in enumerate(ys):
            r = torch.randn(y.shape, generator=g)
            tensors[f"{name}/R{k}"] = r.numpy()
            loss = loss + (y * r).sum()
        loss.backward()
        for (n, kind, x, train), a in zip(c["inputs"], args):
            if train:
                tensors[f"{name}/grad/{n}"] = a.grad.numpy().copy()
        meta.append({"name": name, "op": c["op"], "attrs": c["attrs"], "dtype": c["dtype"],
                     "inputs": [{"name": n, "kind": k, "train": t} for (n, k, _, t) in c["inputs"]],
                     "outputs": len(ys)})
    for k, v in list(tensors.items()):
        if v.dtype == np.float32:
            tensors[k] = v.astype(np.float64)
    write_safetensors(os.path.join(HERE, "ops.safetensors"), tensors, {"cases": json.dumps(meta)})


# ---------------------------------------------------------------- tiny ViTs

def load_reference():
    spec = importlib.util.spec_from_file_location("make_reference", os.path.join(VIT_DIR, "make_reference.py"))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    return ref


N, CLASSES = 3, 5


def make_vit():
    ref = load_reference()
    model = ref.ViT()
    sd = {k: torch.from_numpy(v) for k, v in read_safetensors(os.path.join(VIT_DIR, "vit.safetensors")).items()}
    model.load_state_dict(sd)
    model = model.double().eval()
    W, D, M, p, r = ref.WIDTH, ref.DEPTH, ref.MLP, ref.P_TOKENS, ref.BOTTLENECK
    L = len(ref.PREFIX_LAYERS)
    g = torch.Generator().manual_seed(31)

    def rn(*shape, std=0.5):
        return (std * torch.randn(shape, generator=g)).float().double()

    def ssf(*shape):
        t = rn(*shape, std=0.2)
        t[..., 0, :] += 1.0
        return t

    x = torch.rand((N, 3, ref.IMG, ref.IMG), generator=g).float().double()
    labels = torch.tensor([1, 3, 2], dtype=torch.int64)
    tensors = {"input": x.numpy().astype(np.float32), "labels": labels.numpy()}
    variant_params = {
        "prompt": {"prompt": rn(N, p, W)},
        "vpt-shallow": {"vpt": rn(p, W)},
        "vpt-deep": {"vpt": rn(D, p, W)},
        "prefix": {"prefix": rn(N, L, 2, p, W)},
        "adapter": {"adapter_down_w": rn(D, W, r, std=1 / math.sqrt(W)), "adapter_down_b": rn(D, r, std=0.1),
                    "adapter_up_w": rn(D, r, W, std=1.0), "adapter_up_b": rn(D, W, std=0.5)},
        "ssf": {"ssf_patch": ssf(2, W), "ssf_ln1": ssf(D, 2, W), "ssf_qkv": ssf(D, 2, 3 * W),
                "ssf_proj": ssf(D, 2, W), "ssf_ln2": ssf(D, 2, W), "ssf_fc1": ssf(D, 2, M),
                "ssf_fc2": ssf(D, 2, W), "ssf_norm": ssf(2, W)},
        "plain": {},
    }
    # Full fine-tuning of some frozen weights in the plain case: Go name -> (torch param, to-Go layout).
    full = {
        "patch_embed.proj.weight": ("patch_embed.proj.weight", lambda t: t),
        "patch_embed.proj.bias": ("patch_embed.proj.bias", lambda t: t),
        "pos_embed.patches": ("pos_embed", lambda t: t[0, 1:]),
        "cls_token_pos": ("cls_token", lambda t: t[0]),
        "blocks.0.norm1.weight": ("blocks.0.norm1.weight", lambda t: t),
        "blocks.1.attn.qkv.weight_t": ("blocks.1.attn.qkv.weight", lambda t: t.T),
        "blocks.1.attn.proj.bias": ("blocks.1.attn.proj.bias", lambda t: t),
        "blocks.2.mlp.fc1.weight_t": ("blocks.2.mlp.fc1.weight", lambda t: t.T),
        "norm.weight": ("norm.weight", lambda t: t),
        "norm.bias": ("norm.bias", lambda t: t),
    }
    cases = [
        dict(name="plain", variant="plain", head="linear", mask="range", range=[1, 4], full=list(full)),
        dict(name="adapter", variant="adapter", head="cosine", mask="input"),
        dict(name="ssf", variant="ssf", head="cosine", mask=""),
        dict(name="vpt-shallow", variant="vpt-shallow", head="cosine", mask="range", range=[0, 4]),
        dict(name="vpt-deep", variant="vpt-deep", head="cosine", mask="input"),
        dict(name="prompt", variant="prompt", head="linear", mask="", term=0.05),
        dict(name="prefix", variant="prefix", head="linear", mask="input"),
        dict(name="prompt-l2p", variant="prompt", head="linear", mask="range", range=[1, 5], features="prompt_mean"),
    ]
    meta = []
    for c in cases:
        name, v = c["name"], c["variant"]
        params = {k: t.clone().requires_grad_(True) for k, t in variant_params[v].items()}
        model.zero_grad()
        for p_ in model.parameters():
            p_.requires_grad_(bool(c.get("full")))
        if c["head"] == "linear":
            hw = rn(W, CLASSES, std=1 / math.sqrt(W)).requires_grad_(True)  # x @ w orientation
            hb = rn(CLASSES, std=0.1).requires_grad_(True)
            head = {"head.weight": hw, "head.bias": hb}
        else:
            hw = rn(CLASSES, W, std=1.0).requires_grad_(True)
            sigma = torch.tensor([2.0], requires_grad=True)
            head = {"head.weight": hw, "head.sigma": sigma}
        feats = model(x, v, params)[c.get("features", "features")]
        if c["head"] == "linear":
            logits = feats @ hw + hb
        else:
            logits = sigma * F.linear(F.normalize(feats, p=2, dim=1), F.normalize(hw, p=2, dim=1))
        if c["mask"] == "range":
            keep = torch.zeros(CLASSES, dtype=torch.bool)
            keep[c["range"][0]:c["range"][1]] = True
        elif c["mask"] == "input":
            keep = torch.tensor([True, True, True, True, False])
            tensors[f"{name}/class_mask"] = keep.numpy().astype(np.float32)
        else:
            keep = torch.ones(CLASSES, dtype=torch.bool)
        logits = logits.masked_fill(~keep, float("-inf"))
        loss = F.cross_entropy(logits, labels)
        if c.get("term"):
            loss = loss + c["term"] * (params["prompt"] ** 2).sum()
        loss.backward()
        trainable = {}
        trainable.update(params)
        trainable.update(head)
        for k, t in trainable.items():
            tensors[f"{name}/{k}"] = t.detach().numpy().astype(np.float32)
            tensors[f"{name}/grad/{k}"] = t.grad.numpy().copy()
        names = list(trainable)
        for k in c.get("full", []):
            tp, layout = full[k]
            p_ = dict(model.named_parameters())[tp]
            tensors[f"{name}/grad/{k}"] = layout(p_.grad).numpy().copy()
            names.append(k)
        tensors[f"{name}/loss"] = loss.detach().reshape(1).numpy()
        tensors[f"{name}/logits"] = logits.detach().numpy()
        meta.append({"name": name, "variant": v, "head": c["head"], "mask": c["mask"], "range": c.get("range", [0, 0]),
                     "trainable": names, "term": c.get("term", 0), "features": c.get("features", "features")})
    write_safetensors(os.path.join(HERE, "vit.safetensors"), tensors,
                      {"cases": json.dumps(meta), "config": json.dumps({
                          "tokens": p, "prefix_layers": ref.PREFIX_LAYERS, "bottleneck": r, "scale": ref.SCALE,
                          "heads": ref.HEADS, "classes": CLASSES})})


if __name__ == "__main__":
    make_ops()
    make_vit()
