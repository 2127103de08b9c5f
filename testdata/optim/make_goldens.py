#!/usr/bin/python3
"""Golden files for github.com/cl-dev/cl/tune/optim: torch.optim's answers.

Run with Debian's Python 3 and python3-torch 1.13:

    cd testdata/optim && /usr/bin/python3 make_goldens.py

For every case below it builds the same named parameters, feeds the same 20
gradient sets (seeded, with norms from 0.05 to 5 so clipping sometimes acts)
to torch.optim with the case's hyper-parameters, learning-rate schedule and
clipping, and writes <case>.safetensors:

  init/<param>          F32 shape          values before the first step
  grads/<param>         F32 [20, *shape]   the gradient of every step
  after/<param>         F32 [20, *shape]   values after every step
  lr                    F64 [20, groups]   each group's lr used by every step
  norm                  F64 [20]           clip_grad_norm_'s total norm (0 without clipping)
  state/<param>/<key>   final optimizer state (momentum_buffer, exp_avg,
                        exp_avg_sq as F32; step as F64 [])
  __metadata__ "case"   the case as JSON (the Go test builds its optimizer from it)

Frozen groups are not given to torch (requires_grad False): their values must
not change. Deterministic: running it twice gives identical files.
"""
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 20

SHAPES = {
    "blocks.0.adapter.down": (4, 3),
    "blocks.0.adapter.bias": (3,),
    "head.sigma": (),
    "blocks.1.ssf_scale": (2, 2, 2),
}


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}[arr.dtype]
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    js = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)


def make_params_and_grads():
    g = torch.Generator().manual_seed(1993)
    init = {n: torch.randn(s, generator=g, dtype=torch.float32) for n, s in SHAPES.items()}
    scales = torch.logspace(math.log10(0.05), math.log10(5.0), STEPS, dtype=torch.float64)
    perm = torch.randperm(STEPS, generator=g)
    grads = []
    for k in range(STEPS):
        raw = {n: torch.randn(s, generator=g, dtype=torch.float32) for n, s in SHAPES.items()}
        tot = math.sqrt(sum(float((v.double() ** 2).sum()) for v in raw.values()))
        sc = float(scales[perm[k]]) / tot
        grads.append({n: (v * sc).float() for n, v in raw.items()})
    return init, grads


def build_scheduler(opt, sch, steps_per_epoch):
    kind = sch.get("kind", "constant")
    warm = sch.get("warmup", 0)
    length = sch.get("length", 0)
    if kind == "constant" and warm == 0:
        return None
    if kind == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=length - warm, eta_min=sch.get("min_lr", 0.0))
    elif kind == "multistep":
        main = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=sch["milestones"], gamma=sch["gamma"])
    else:
        main = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    if warm == 0:
        return main
    f = sch.get("warmup_factor", 0) or 1.0 / (warm + 1)
    lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=f, end_factor=1.0, total_iters=warm)
    return torch.optim.lr_scheduler.SequentialLR(opt, [lin, main], milestones=[warm])


def run_case(case, init, grads):
    params = {n: torch.nn.Parameter(v.clone()) for n, v in init.items()}
    groups = []
    trainable = []
    for grp in case["groups"]:
        if grp.get("frozen"):
            for n in grp["params"]:
                params[n].requires_grad_(False)
            continue
        ps = [params[n] for n in grp["params"]]
        trainable += ps
        groups.append({"params": ps, "lr": grp["lr"], "weight_decay": grp.get("weight_decay", 0.0)})
    cfg = case["config"]
    kind = cfg["kind"]
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=0.0, momentum=cfg.get("momentum", 0.0), dampening=cfg.get("dampening", 0.0),
                              nesterov=cfg.get("nesterov", False))
    elif kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls(groups, lr=0.0, betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
    else:
        raise ValueError(kind)
    sch = cfg.get("schedule", {})
    spe = case.get("steps_per_epoch", 1)
    sched = build_scheduler(opt, sch, spe)
    per = sch.get("per", "epoch")
    lrs = np.zeros((STEPS, len(groups)))
    norms = np.zeros(STEPS)
    after = {n: np.zeros((STEPS,) + SHAPES[n], np.float32) for n in SHAPES}
    for k in range(STEPS):
        for n, p in params.items():
            p.grad = grads[k][n].clone() if p.requires_grad else None
        if cfg.get("clip_norm", 0) > 0:
            norms[k] = float(torch.nn.utils.clip_grad_norm_(trainable, cfg["clip_norm"]))
        lrs[k] = [gr["lr"] for gr in opt.param_groups]
        opt.step()
        for n, p in params.items():
            after[n][k] = p.detach().numpy()
        if sched is not None and (per == "step" or (k + 1) % spe == 0):
            sched.step()
    tensors = {"lr": lrs, "norm": norms}
    for n in SHAPES:
        tensors["init/" + n] = init[n].numpy()
        tensors["grads/" + n] = np.stack([grads[k][n].numpy() for k in range(STEPS)])
        tensors["after/" + n] = after[n]
        st = opt.state.get(params[n], {})
        for key, v in st.items():
            if v is None:
                continue
            if key == "step":
                tensors["state/%s/step" % n] = np.array(float(v), np.float64)
            else:
                tensors["state/%s/%s" % (n, key)] = v.detach().numpy().astype(np.float32)
    return tensors


ALL = list(SHAPES)
ONE = [{"params": ALL, "lr": 0.1}]
COS_EPOCH = {"kind": "cosine", "per": "epoch", "length": 5, "min_lr": 0.0}  # PILOT: T_max = epochs, eta_min 0
COS_WARM_STEP = {"kind": "cosine", "per": "step", "length": 20, "warmup": 4, "warmup_factor": 0.25, "min_lr": 1e-4}
ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

CASES = {
    "sgd_plain": {"config": {"kind": "sgd"}, "groups": ONE},
    "sgd_momentum_cosine_epoch": {"config": {"kind": "sgd", "momentum": 0.9, "schedule": COS_EPOCH},
                                  "groups": [{"params": ALL, "lr": 0.01, "weight_decay": 5e-4}], "steps_per_epoch": 4},
    "sgd_dampening": {"config": {"kind": "sgd", "momentum": 0.9, "dampening": 0.1}, "groups": ONE},
    "sgd_nesterov_wd_warmup_clip": {"config": {"kind": "sgd", "momentum": 0.9, "nesterov": True, "clip_norm": 1.0,
                                               "schedule": {"kind": "cosine", "per": "step", "length": 20, "warmup": 3,
                                                            "warmup_factor": 0.1}},
                                    "groups": [{"params": ALL, "lr": 0.05, "weight_decay": 1e-2}]},
    "sgd_wd_clip": {"config": {"kind": "sgd", "clip_norm": 2.0}, "groups": [{"params": ALL, "lr": 0.05, "weight_decay": 0.05}]},
    "adam_plain": {"config": dict(kind="adam", **ADAM), "groups": [{"params": ALL, "lr": 1e-3}]},
    "adam_wd_warmup_cosine_clip": {"config": dict(kind="adam", clip_norm=1.0, schedule=COS_WARM_STEP, **ADAM),
                                   "groups": [{"params": ALL, "lr": 1e-2, "weight_decay": 1e-2}]},
    "adamw_warmup_cosine_clip": {"config": {"kind": "adamw", "beta1": 0.9, "beta2": 0.98, "eps": 1e-6, "clip_norm": 0.5,
                                            "schedule": COS_WARM_STEP},
                                 "groups": [{"params": ALL, "lr": 1e-2, "weight_decay": 0.05}]},
    "sgd_groups_frozen": {"config": {"kind": "sgd", "momentum": 0.9, "clip_norm": 1.5, "schedule": COS_EPOCH},
                          "groups": [{"name": "adapter", "params": ["blocks.0.adapter.down", "blocks.0.adapter.bias"], "lr": 0.1, "weight_decay": 5e-4},
                                     {"name": "head", "params": ["head.sigma"], "lr": 0.01},
                                     {"name": "frozen", "params": ["blocks.1.ssf_scale"], "lr": 0.1, "frozen": True}],
                          "steps_per_epoch": 4},
    "adamw_groups_warmup_epoch": {"config": dict(kind="adamw", schedule={"kind": "cosine", "per": "epoch", "length": 5, "warmup": 1,
                                                                         "warmup_factor": 0.5, "min_lr": 1e-5}, **ADAM),
                                  "groups": [{"name": "decay", "params": ["blocks.0.adapter.down", "blocks.1.ssf_scale"], "lr": 3e-3, "weight_decay": 0.1},
                                             {"name": "nodecay", "params": ["blocks.0.adapter.bias", "head.sigma"], "lr": 1e-2}],
                                  "steps_per_epoch": 4},
    # SLCA: backbone at lr/100 and head at lr, SGD(0.9), wd 5e-4, MultiStepLR per epoch.
    "sgd_groups_multistep_epoch": {"config": {"kind": "sgd", "momentum": 0.9,
                                              "schedule": {"kind": "multistep", "per": "epoch", "milestones": [2, 4], "gamma": 0.1}},
                                   "groups": [{"name": "backbone", "params": ["blocks.0.adapter.down", "blocks.1.ssf_scale"], "lr": 1e-4, "weight_decay": 5e-4},
                                              {"name": "head", "params": ["blocks.0.adapter.bias", "head.sigma"], "lr": 1e-2, "weight_decay": 5e-4}],
                                   "steps_per_epoch": 4},
}


def main():
    init, grads = make_params_and_grads()
    for name, case in CASES.items():
        tensors = run_case(case, init, grads)
        meta = {"case": json.dumps(case, sort_keys=True), "torch": torch.__version__}
        write_safetensors(os.path.join(HERE, name + ".safetensors"), tensors, meta)
        print(name, "ok")


if __name__ == "__main__":
    main()
