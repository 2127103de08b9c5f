#!/usr/bin/python3
"""numpy side of scripts/bench-ranpac.sh: PILOT's RanPAC stage on the inputs
the Go benchmark wrote to DIR (x.npy, W.npy, go.json), timed, and compared
with Go's λ and predictions.

PILOT (models/ranpac.py) per stage: H = ReLU(x W); G += HᵀH; Q += HᵀY;
optimise_ridge_parameter (first int(0.8 N) rows of the split order fit,
17 torch.linalg.solve of size M, MSE on the rest); W_o = solve(G + λI, Q).
Here in float64 numpy (the Go head computes in float64 too).

Prints one JSON line: both times, per-phase seconds and GFLOP/s of both
sides (Go's from go.json, counted by heads' ranpacPhaseRates), peak memory of
both (Go's peak heap and peak RSS, numpy's peak RSS, in units of one M×M
float64 matrix), both λ, the fraction of identical predictions and the load
average when numpy finished.
"""
import json
import os
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

marks = [time.perf_counter()]
h = np.maximum(x @ w, 0)
marks.append(time.perf_counter())
Y = np.eye(C)[y]
G = h.T @ h
Q = h.T @ Y
marks.append(time.perf_counter())
hs, ys = h[g["perm"]], Y[g["perm"]]
ridges = 10.0 ** np.arange(-8, 9)
nf = int(hs.shape[0] * 0.8)
q_val = hs[:nf].T @ ys[:nf]
g_val = hs[:nf].T @ hs[:nf]
marks.append(time.perf_counter())
losses = []
for r in ridges:
    wo = np.linalg.solve(g_val + r * np.eye(g_val.shape[0]), q_val).T
    losses.append(np.mean((hs[nf:] @ wo.T - ys[nf:]) ** 2))
lam = ridges[int(np.argmin(losses))]
marks.append(time.perf_counter())
Wo = np.linalg.solve(G + lam * np.eye(G.shape[0]), Q)
marks.append(time.perf_counter())
secs = marks[-1] - marks[0]

# Phases and their flop counts (a multiply-add is 2), as numpy runs them:
# one projection, G and Q, the fit rows' Gram, 17 LU solves of size M
# (2/3·M³ + 2·M²·C each) with their validation products, the final LU solve.
# numpy's matmul runs a matrix times its own transpose (h.T @ h, and
# hs[:nf].T @ hs[:nf], a view of the same memory) as one cblas_dsyrk, which
# computes one triangle: N·M·(M+1) flops, as cl's count of its own dsyrk
# (until 2026-12-01 this script counted 2·N·M², twice what numpy executes).
N, D = x.shape
M = w.shape[1]
nv = N - nf
flops = {"projection": 2 * N * D * M, "gram": N * M * (M + 1) + 2 * N * M * C,
         "search-gram": nf * M * (M + 1) + 2 * nf * M * C,
         "search-solve": len(ridges) * (2 / 3 * M ** 3 + 2 * M * M * C + 2 * nv * M * C),
         "solve": 2 / 3 * M ** 3 + 2 * M * M * C}
numpy_phases = [{"name": k, "seconds": round(marks[i + 1] - marks[i], 3),
                 "gflop_per_s": round(f / 1e9 / max(marks[i + 1] - marks[i], 1e-9), 1)}
                for i, (k, f) in enumerate(flops.items())]
go_phases = [{"name": p["name"], "seconds": round(p["seconds"], 3),
              "gflop_per_s": round(p["gflop"] / max(p["seconds"], 1e-9), 1)} for p in g.get("phases", [])]

ht = h[:500]
norm = lambda a, ax: a / np.maximum(np.linalg.norm(a, axis=ax, keepdims=True), 1e-12)
pred = np.argmax(norm(ht, 1) @ norm(Wo, 0), 1)
same_pred = float(np.mean(pred == np.array(g["pred"])))
gram = 8.0 * M * M
# Peak resident memory of this process (inputs, H, G, the solves), in units of one M×M float64 matrix.
numpy_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gram
print(json.dumps({"build": os.environ.get("BENCH_BUILD", ""), "M": M, "N": x.shape[0], "numpy_seconds": round(secs, 2),
                  "go_seconds": round(g["seconds_per_stage"], 2),
                  "speedup_go_over_numpy": round(secs / g["seconds_per_stage"], 2),
                  "go_learn_seconds": round(g.get("learn_seconds", 0), 2),
                  "go_endstage_seconds": round(g.get("endstage_seconds", 0), 2),
                  "go_learn_untimed_seconds": round(g.get("learn_untimed_seconds", 0), 2),
                  "go_endstage_untimed_seconds": round(g.get("endstage_untimed_seconds", 0), 2),
                  "go_peak_heap_over_G": round(g.get("peak_heap_over_G", 0), 2),
                  "go_peak_rss_over_G": round(g.get("peak_rss_over_G", 0), 2),
                  "numpy_peak_rss_over_G": round(numpy_rss, 2),
                  "go_blas": g.get("blas", ""), "go_lapack": g.get("lapack", ""),
                  "go_phases": go_phases, "numpy_phases": numpy_phases,
                  "load_average": [round(v, 2) for v in os.getloadavg()],
                  "lambda_numpy": float(lam), "lambda_go": g["lambda"],
                  "same_predictions": same_pred}))
