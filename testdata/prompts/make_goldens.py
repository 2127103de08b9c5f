#!/usr/bin/python3
"""torch goldens for the prompt-based and expandable learners (learners/l2p.go, dualprompt.go, ...).

Run from the repository root:  /usr/bin/python3 testdata/prompts/make_goldens.py
Needs torch 1.13 and numpy (Debian python3-torch, python3-numpy). Deterministic. References run in float64.

Each method is written here from its definition (docs/TRAINING.md "Prompt methods"), independently of the Go code,
on models/vit's timm-structured tiny reference ViT (models/vit/testdata/make_reference.py and its weights
vit.safetensors: 32x32 images, patch 8, width 48, depth 3, 3 heads). One stage of a run with 6 classes in which
classes 0-1 were learned before (known = 2) and the stage brings classes 2-3: two mini-batches of 4 images, one
optimiser step each. Every file holds the shared "input/<s>" [4,3,32,32] F32 and "labels/<s>" [4] I64 (s = 0, 1),
and per case:
  "<case>/init/<param>"   F32, the initial values fed to Go (Go's names and layouts)
  "<case>/<s>/query"      F64 [4,W], the frozen ViT's [CLS] of the batch (the selection query)
  "<case>/<s>/idx"        I64, the selection of step s (L2P: [4,top-k] pool rows)
  "<case>/<s>/loss"       F64 [1], the loss of step s
  "<case>/<s>/grad/<p>"   F64, the gradient of every trained tensor at step s
  "<case>/<s>/param/<p>"  F64, every trained tensor after step s's optimiser update

Files:
  l2p.safetensors   cases "per-sample" (selection per sample in training) and "batch-vote" (PILOT's
                    batchwise_prompt: the top-k most frequent rows of the batch for every sample; ties by the lower
                    row). Pool 10, length 5, top-k 5, pull 0.1, Adam(lr 0.001875), linear head [W,6] on the mean
                    of the prompt outputs, logits of classes outside the stage at -inf.
  dualprompt.safetensors  stage 1 (E-prompt 1, copied from E-prompt 0 first: shared_prompt_pool) with G-prompt
                    in block 0 and E-prompts in blocks 1-2 (the tiny ViT has 3), length 5, pool 4, pull 0.1,
                    Adam(lr 0.001), linear head on [CLS]. Cases "key-value" (row 0 of a prompt = keys, row 1 =
                    values, per sample) and "pilot" (PILOT's EPrompt.forward reshape without permute). Also
                    "<case>/<s>/match" [4,1]: the test-time top-1 key of each query before step s.
  coda.safetensors  stage 1 of 3 tasks with 12 components of length 4 in blocks 0-2 (4 per task: stage 1 trains
                    components 4-7, components 0-3 take part detached, 8-11 unused), Adam(lr 0.001), linear head on
                    [CLS]. Cases "pilot" (no orthogonality penalty) and "ortho" (weight 0.1 on keys, attention
                    vectors and prompts of every block). "<case>/<s>/alpha" [4,8,3]: the weights cos(q*A, K).
                    Gradients are of the full tensors (zero outside the trained components).
  ease.safetensors  two stages with adapter sets "set0/*" (stage 0, classes 0-1, given) and "set1/*" (stage 1's
                    initial values): "train/<s>/..." two SGD steps (lr 0.025, momentum 0.9, wd 5e-4) of set 1 and
                    the proxy cosine head "init/head.weight" [2,W], "init/head.sigma" 1.5 on classes 2-3 (labels
                    shifted by 2; no adapter dropout). "protos" [2 subspaces, 4 classes, W]: class means of
                    "stage0/input" (set 0) and of both training batches (sets 0 and trained 1), classes 0-1 in
                    subspace 1 completed by solve_sim_reset; "test/scores" [4,4]: the re-weighted cosine logits
                    (alpha 0.1, t = 1) of "test/input".
"""
import importlib.util
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VIT_DIR = os.path.join(ROOT, "models", "vit", "testdata")

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # byte-identical reruns (threaded reductions reorder float64 sums)

B, C_ALL, KNOWN, STAGE = 4, 6, 2, [2, 3]
LABELS = [[2, 3, 3, 2], [3, 2, 2, 3]]


def write_safetensors(path, tensors, metadata=None):
    codes = {np.dtype("float32"): ("F32", "<f4"), np.dtype("float64"): ("F64", "<f8"),
             np.dtype("int64"): ("I64", "<i8")}
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.asarray(tensors[name]).copy(order="C")
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
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy()
    return out


def load_vit():
    spec = importlib.util.spec_from_file_location("make_reference", os.path.join(VIT_DIR, "make_reference.py"))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    model = ref.ViT()
    sd = {k: torch.from_numpy(v) for k, v in read_safetensors(os.path.join(VIT_DIR, "vit.safetensors")).items()}
    model.load_state_dict(sd)
    model = model.double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return ref, model


def f32(t):
    """Round to float32 (what Go is fed) and continue in float64."""
    return t.float().double()


def batches(g, ref):
    xs = [f32(torch.rand((B, 3, ref.IMG, ref.IMG), generator=g)) for _ in LABELS]
    ys = [torch.tensor(l, dtype=torch.int64) for l in LABELS]
    return xs, ys


def l2n(x):
    """PILOT's Prompt.l2_normalize: x * rsqrt(max(sum x^2, 1e-12))."""
    return x * torch.rsqrt(torch.clamp((x * x).sum(dim=-1, keepdim=True), min=1e-12))


def masked_ce(logits, y):
    keep = torch.zeros(C_ALL, dtype=torch.bool)
    keep[STAGE] = True
    return F.cross_entropy(logits.masked_fill(~keep, float("-inf")), y)


def vote(idx, top_k):
    """The top_k most frequent rows of idx [B,k] (ties: lower row first)."""
    ids, counts = torch.unique(idx, return_counts=True, sorted=True)
    order = sorted(range(len(ids)), key=lambda i: (-int(counts[i]), int(ids[i])))[:top_k]
    return ids[order].unsqueeze(0).expand(idx.shape[0], -1)


def record(out, case, s, params, loss, idx, query):
    out[f"{case}/{s}/loss"] = loss.detach().reshape(1).numpy()
    out[f"{case}/{s}/idx"] = idx.numpy().astype(np.int64)
    out[f"{case}/{s}/query"] = query.numpy()
    for k, t in params.items():
        out[f"{case}/{s}/grad/{k}"] = t.grad.numpy().copy()


# ---------------------------------------------------------------- L2P

def make_l2p():
    ref, model = load_vit()
    W = ref.WIDTH
    POOL, LENGTH, TOP_K, PULL, LR = 10, 5, 5, 0.1, 0.001875
    g = torch.Generator().manual_seed(7)
    xs, ys = batches(g, ref)
    out = {}
    for s in range(len(xs)):
        out[f"input/{s}"] = xs[s].numpy().astype(np.float32)
        out[f"labels/{s}"] = ys[s].numpy()
    init = {
        "prompts": f32(torch.rand((POOL, LENGTH, W), generator=g) * 2 - 1),
        "keys": f32(torch.rand((POOL, W), generator=g) * 2 - 1),
        "head.weight": f32(torch.randn((W, C_ALL), generator=g) / W ** 0.5),
        "head.bias": f32(0.1 * torch.randn((C_ALL,), generator=g)),
    }
    for case in ("per-sample", "batch-vote"):
        params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
        for k, v in init.items():
            out[f"{case}/init/{k}"] = v.numpy().astype(np.float32)
        opt = torch.optim.Adam(list(params.values()), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
        for s, (x, y) in enumerate(zip(xs, ys)):
            opt.zero_grad()
            with torch.no_grad():
                q = model(x)["features"]
            qn, kn = l2n(q), l2n(params["keys"])
            sim = qn @ kn.t()
            _, idx = torch.topk(sim, k=TOP_K, dim=1)
            if case == "batch-vote":
                idx = vote(idx, TOP_K)
            prompt = params["prompts"][idx].reshape(B, TOP_K * LENGTH, W)
            feats = model(x, "prompt", {"prompt": prompt})["prompt_mean"]
            logits = feats @ params["head.weight"] + params["head.bias"]
            reduce_sim = (kn[idx] * qn.unsqueeze(1)).sum() / B
            loss = masked_ce(logits, y) - PULL * reduce_sim
            loss.backward()
            record(out, case, s, params, loss, idx, q)
            opt.step()
            for k, t in params.items():
                out[f"{case}/{s}/param/{k}"] = t.detach().numpy().copy()
    write_safetensors(os.path.join(HERE, "l2p.safetensors"), out, {"config": json.dumps({
        "pool": POOL, "length": LENGTH, "top_k": TOP_K, "pull": PULL, "lr": LR, "classes": C_ALL,
        "known": KNOWN, "stage": STAGE})})


# ---------------------------------------------------------------- DualPrompt

def make_dualprompt():
    ref, model = load_vit()
    W = ref.WIDTH
    G_LAYERS, E_LAYERS, LENGTH, POOL, PULL, LR, TASK = [0], [1, 2], 5, 4, 0.1, 0.001, 1
    ref.PREFIX_LAYERS = sorted(G_LAYERS + E_LAYERS)
    g = torch.Generator().manual_seed(11)
    xs, ys = batches(g, ref)
    out = {}
    for s in range(len(xs)):
        out[f"input/{s}"] = xs[s].numpy().astype(np.float32)
        out[f"labels/{s}"] = ys[s].numpy()
    init = {
        "g-prompt": f32(torch.rand((len(G_LAYERS), 2, LENGTH, W), generator=g) * 2 - 1),
        "e-prompts": f32(torch.rand((POOL, len(E_LAYERS), 2, LENGTH, W), generator=g) * 2 - 1),
        "keys": f32(torch.rand((POOL, W), generator=g) * 2 - 1),
        "head.weight": f32(torch.randn((W, C_ALL), generator=g) / W ** 0.5),
        "head.bias": f32(0.1 * torch.randn((C_ALL,), generator=g)),
    }
    for case in ("key-value", "pilot"):
        for k, v in init.items():
            out[f"{case}/init/{k}"] = v.numpy().astype(np.float32)
        params = {k: v.clone() for k, v in init.items()}
        # shared_prompt_pool: stage TASK starts from E-prompt TASK-1.
        params["e-prompts"][TASK] = params["e-prompts"][TASK - 1]
        params = {k: v.requires_grad_(True) for k, v in params.items()}
        opt = torch.optim.Adam(list(params.values()), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
        for s, (x, y) in enumerate(zip(xs, ys)):
            opt.zero_grad()
            with torch.no_grad():
                q = model(x)["features"]
            qn, kn = l2n(q), l2n(params["keys"])
            match = torch.topk(qn @ kn.t(), k=1, dim=1)[1]  # test-time selection, top-1
            idx = torch.full((B,), TASK, dtype=torch.int64)   # training: the stage's own E-prompt
            e = params["e-prompts"][idx]                       # [B, layers, 2, len, W]
            if case == "pilot":
                # PILOT's EPrompt.forward: [layers, 2, B, len, W] reshaped to [layers, B, 2, len, W].
                e = e.permute(1, 2, 0, 3, 4).reshape(len(E_LAYERS), B, 2, LENGTH, W).permute(1, 0, 2, 3, 4)
            gp = params["g-prompt"].unsqueeze(0).expand(B, -1, -1, -1, -1)
            prefix = torch.cat([gp, e], dim=1)
            feats = model(x, "prefix", {"prefix": prefix})["features"]
            logits = feats @ params["head.weight"] + params["head.bias"]
            reduce_sim = (kn[idx] * qn).sum() / B
            loss = masked_ce(logits, y) - PULL * reduce_sim
            loss.backward()
            record(out, case, s, params, loss, idx.unsqueeze(1), q)
            out[f"{case}/{s}/match"] = match.numpy().astype(np.int64)
            opt.step()
            for k, t in params.items():
                out[f"{case}/{s}/param/{k}"] = t.detach().numpy().copy()
    write_safetensors(os.path.join(HERE, "dualprompt.safetensors"), out, {"config": json.dumps({
        "g_layers": G_LAYERS, "e_layers": E_LAYERS, "length": LENGTH, "pool": POOL, "pull": PULL, "lr": LR,
        "task": TASK, "classes": C_ALL, "known": KNOWN, "stage": STAGE})})


# ---------------------------------------------------------------- CODA-Prompt

def ortho_penalty(t):
    return ((t @ t.t() - torch.eye(t.shape[0])) ** 2).mean()


def make_coda():
    ref, model = load_vit()
    W = ref.WIDTH
    LAYERS, COMPONENTS, LENGTH, TASKS, LR, TASK = [0, 1, 2], 12, 4, 3, 0.001, 1
    pt = COMPONENTS // TASKS
    s_, f_ = TASK * pt, (TASK + 1) * pt
    ref.PREFIX_LAYERS = LAYERS
    L = len(LAYERS)
    g = torch.Generator().manual_seed(13)
    xs, ys = batches(g, ref)
    out = {}
    for s in range(len(xs)):
        out[f"input/{s}"] = xs[s].numpy().astype(np.float32)
        out[f"labels/{s}"] = ys[s].numpy()
    b = 1 / W ** 0.5
    init = {  # component-major: [components, layers, ...]
        "prompts": f32(0.3 * torch.randn((COMPONENTS, L, LENGTH, W), generator=g)),
        "keys": f32(0.3 * torch.randn((COMPONENTS, L, W), generator=g)),
        "attention": f32(0.3 * torch.randn((COMPONENTS, L, W), generator=g)),
        "head.weight": f32((torch.rand((W, C_ALL), generator=g) * 2 - 1) * b),
        "head.bias": f32((torch.rand((C_ALL,), generator=g) * 2 - 1) * b),
    }
    for case, mu in (("pilot", 0.0), ("ortho", 0.1)):
        for k, v in init.items():
            out[f"{case}/init/{k}"] = v.numpy().astype(np.float32)
        params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
        opt = torch.optim.Adam(list(params.values()), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
        for s, (x, y) in enumerate(zip(xs, ys)):
            opt.zero_grad()
            with torch.no_grad():
                q = model(x)["features"]
            prefix, alphas, ortho = [], [], 0
            for li in range(L):
                def part(name):  # earlier tasks' components detached, this task's trained
                    t = params[name][:, li]
                    return torch.cat([t[:s_].detach(), t[s_:f_]], dim=0)
                K, A, P = part("keys"), part("attention"), part("prompts")
                aq = torch.einsum("bd,kd->bkd", q, A)
                alpha = torch.einsum("bkd,kd->bk", F.normalize(aq, dim=2), F.normalize(K, dim=1))
                Pm = torch.einsum("bk,kld->bld", alpha, P)
                i = LENGTH // 2
                prefix.append(torch.stack([Pm[:, :i], Pm[:, i:]], dim=1))
                alphas.append(alpha)
                if mu > 0:
                    ortho = ortho + ortho_penalty(K) + ortho_penalty(A) + ortho_penalty(P.reshape(P.shape[0], -1))
            prefix = torch.stack(prefix, dim=1)  # [B, layers, 2, len/2, W]
            feats = model(x, "prefix", {"prefix": prefix})["features"]
            logits = feats @ params["head.weight"] + params["head.bias"]
            loss = masked_ce(logits, y) + mu * ortho
            loss.backward()
            out[f"{case}/{s}/alpha"] = torch.stack(alphas, dim=2).detach().numpy()  # [B, f, layers]
            record(out, case, s, params, loss, torch.zeros((B, 1), dtype=torch.int64), q)
            opt.step()
            for k, t in params.items():
                out[f"{case}/{s}/param/{k}"] = t.detach().numpy().copy()
    write_safetensors(os.path.join(HERE, "coda.safetensors"), out, {"config": json.dumps({
        "layers": LAYERS, "components": COMPONENTS, "length": LENGTH, "tasks": TASKS, "lr": LR, "task": TASK,
        "classes": C_ALL, "known": KNOWN, "stage": STAGE})})


# ---------------------------------------------------------------- EASE

def make_ease():
    ref, model = load_vit()
    W, D, r = ref.WIDTH, ref.DEPTH, ref.BOTTLENECK
    LR, MOM, WD, SIGMA, ALPHA = 0.025, 0.9, 5e-4, 1.5, 0.1
    g = torch.Generator().manual_seed(17)
    xs, ys = batches(g, ref)
    out = {}
    for s in range(len(xs)):
        out[f"input/{s}"] = xs[s].numpy().astype(np.float32)
        out[f"labels/{s}"] = ys[s].numpy()
    x0 = f32(torch.rand((B, 3, ref.IMG, ref.IMG), generator=g))  # stage 0's images, classes 0 and 1
    y0 = torch.tensor([0, 1, 1, 0])
    xt = f32(torch.rand((B, 3, ref.IMG, ref.IMG), generator=g))  # test images
    out["stage0/input"], out["stage0/labels"] = x0.numpy().astype(np.float32), y0.numpy()
    out["test/input"] = xt.numpy().astype(np.float32)

    def adapter():
        return {"adapter_down_w": f32(torch.randn((D, W, r), generator=g) / W ** 0.5),
                "adapter_down_b": f32(0.1 * torch.randn((D, r), generator=g)),
                "adapter_up_w": f32(0.5 * torch.randn((D, r, W), generator=g)),
                "adapter_up_b": f32(0.2 * torch.randn((D, W), generator=g))}
    sets = [adapter(), adapter()]
    for i, a in enumerate(sets):
        for k, v in a.items():
            out[f"set{i}/{k}"] = v.numpy().astype(np.float32)
    b = 1 / W ** 0.5
    proxy = f32((torch.rand((2, W), generator=g) * 2 - 1) * b)
    out["init/head.weight"] = proxy.numpy().astype(np.float32)
    out["init/head.sigma"] = np.array([SIGMA], dtype=np.float32)

    # Stage 1: train adapter set 1 and the proxy cosine head on classes 2, 3 (labels shifted by 2).
    params = {k: v.clone().requires_grad_(True) for k, v in sets[1].items()}
    params["head.weight"] = proxy.clone().requires_grad_(True)
    params["head.sigma"] = torch.tensor([SIGMA], requires_grad=True)
    opt = torch.optim.SGD(list(params.values()), lr=LR, momentum=MOM, weight_decay=WD)
    for s, (x, y) in enumerate(zip(xs, ys)):
        opt.zero_grad()
        ad = {k: params[k] for k in sets[1]}
        f = model(x, "adapter", ad)["features"]
        logits = params["head.sigma"] * F.linear(F.normalize(f, dim=1), F.normalize(params["head.weight"], dim=1))
        loss = F.cross_entropy(logits, y - 2)
        loss.backward()
        record(out, "train", s, params, loss, torch.zeros((B, 1), dtype=torch.int64), f.detach())
        opt.step()
        for k, t in params.items():
            out[f"train/{s}/param/{k}"] = t.detach().numpy().copy()
    trained = {k: params[k].detach() for k in sets[1]}

    with torch.no_grad():
        feat = lambda a, x: model(x, "adapter", a)["features"]
        P = torch.zeros((2, 4, W))  # subspace, class 0-3
        f00 = feat(sets[0], x0)
        for c in (0, 1):
            P[0, c] = f00[y0 == c].mean(0)
        x1, y1 = torch.cat(xs), torch.cat(ys)
        for i, a in enumerate((sets[0], trained)):
            fi = feat(a, x1)
            for c in (2, 3):
                P[i, c] = fi[y1 == c].mean(0)
        # Completion (solve_sim_reset): classes of stage 0 in subspace 1 from the classes of stage 1.
        A, Bm, A_hat = P[0, 2:4], P[1, 2:4], P[0, 0:2]
        sim = torch.zeros((2, 2))
        for i in range(2):
            for j in range(2):
                sim[i, j] = torch.cosine_similarity(A_hat[i], A[j], dim=0)
        P[1, 0:2] = F.softmax(sim, dim=1) @ Bm
        out["protos"] = P.numpy()
        # Re-weighted cosine logits at t = 1.
        z = [F.normalize(feat(sets[0], xt), dim=1), F.normalize(feat(trained, xt), dim=1)]
        scores = torch.zeros((B, 4))
        for i, cls in enumerate(([0, 1], [2, 3])):
            for j in range(2):
                o = z[j] @ F.normalize(P[j, cls], dim=1).t()
                scores[:, cls] += o if i == j else ALPHA / 1 * o
        out["test/scores"] = scores.numpy()
    write_safetensors(os.path.join(HERE, "ease.safetensors"), out, {"config": json.dumps({
        "bottleneck": r, "scale": ref.SCALE, "lr": LR, "momentum": MOM, "wd": WD, "sigma": SIGMA, "alpha": ALPHA})})


if __name__ == "__main__":
    make_l2p()
    make_dualprompt()
    make_coda()
    make_ease()
