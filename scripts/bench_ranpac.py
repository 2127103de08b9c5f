#!/usr/bin/python3
"""numpy side of scripts/bench-ranpac.sh: PILOT's RanPAC stage on the inputs
the Go benchmark wrote to DIR (x.npy, W.npy, go.json), timed, and compared
with Go's λ and predictions.

PILOT (models/ranpac.py) per stage: H = ReLU(x W); G += HᵀH; Q += HᵀY;
optimise_ridge_parameter (first int(0.8 N) rows of the split order fit,
17 torch.linalg.solve of size M, MSE on the rest); W_o = solve(G + λI, Q).
Here in float64 numpy (the Go head computes in float64 too).
"""
import json
import resource
import sys
import time

import numpy as np

d = sys.argv[1]
x = np.load(d + "/x.npy").astype(np.float64)
w = np.load(d + "/W.npy").astype(np.float64)
g = json.load(open(d + "/go.json"))
y = np.array(g["y"])
C = int(y.max()) + 1

t0 = time.perf_counter()
h = np.maximum(x @ w, 0)
Y = np.eye(C)[y]
G = h.T @ h
Q = h.T @ Y
hs, ys = h[g["perm"]], Y[g["perm"]]
ridges = 10.0 ** np.arange(-8, 9)
nf = int(hs.shape[0] * 0.8)
q_val = hs[:nf].T @ ys[:nf]
g_val = hs[:nf].T @ hs[:nf]
losses = []
for r in ridges:
    wo = np.linalg.solve(g_val + r * np.eye(g_val.shape[0]), q_val).T
    losses.append(np.mean((hs[nf:] @ wo.T - ys[nf:]) ** 2))
lam = ridges[int(np.argmin(losses))]
Wo = np.linalg.solve(G + lam * np.eye(G.shape[0]), Q)
secs = time.perf_counter() - t0

ht = h[:500]
norm = lambda a, ax: a / np.maximum(np.linalg.norm(a, axis=ax, keepdims=True), 1e-12)
pred = np.argmax(norm(ht, 1) @ norm(Wo, 0), 1)
same_pred = float(np.mean(pred == np.array(g["pred"])))
M = w.shape[1]
gram = 8.0 * M * M
# Peak resident memory of this process (inputs, H, G, the solves), in units of one M×M float64 matrix.
numpy_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gram
print(json.dumps({"M": M, "N": x.shape[0], "numpy_seconds": round(secs, 2),
                  "go_seconds": round(g["seconds_per_stage"], 2),
                  "speedup_go_over_numpy": round(secs / g["seconds_per_stage"], 2),
                  "go_learn_seconds": round(g.get("learn_seconds", 0), 2),
                  "go_endstage_seconds": round(g.get("endstage_seconds", 0), 2),
                  "go_peak_heap_over_G": round(g.get("peak_heap_over_G", 0), 2),
                  "numpy_peak_rss_over_G": round(numpy_rss, 2),
                  "go_blas": g.get("blas", ""),
                  "lambda_numpy": float(lam), "lambda_go": g["lambda"],
                  "same_predictions": same_pred}))
