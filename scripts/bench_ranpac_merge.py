#!/usr/bin/python3
"""numpy side of scripts/bench-ranpac-merge.sh: what cl merge and cl forget
do to RanPAC heads, as a PILOT user would do it in numpy (float64), on the
inputs heads' BenchmarkRanPACMergeForget wrote to DIR (x.npy, W.npy,
go_merge.json), timed and compared with Go's predictions.

Untimed: the two heads as they stand before the merge, G_i = H_iᵀH_i and
Q_i = H_iᵀY_i for the two halves of the rows (H = ReLU(x W)). Merge (timed):
G = G_1 + G_2, Q = Q_1 + Q_2, W_o = solve(G + λI, Q) with Go's λ. Forget
(timed): the first F rows' H_f = ReLU(x_f W), G −= H_fᵀH_f, Q −= H_fᵀY_f,
W_o = solve(G + λI, Q). Predictions: argmax of cos(h(x), W_o[:, c]) for the
first 500 rows after each step.

Prints one JSON line: both times of both steps, the speed-ups, the peak RSS
of both processes over one M×M float64 matrix, the fraction of identical
predictions and the load average.
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
g = json.load(open(d + "/go_merge.json"))
y = np.array(g["y"])
C = int(y.max()) + 1
Y = np.eye(C)[y]
half, f, lam = g["half"], g["forget"], g["lambda"]
M = w.shape[1]

heads = []
for a, b in ((0, half), (half, len(y))):
    h = np.maximum(x[a:b] @ w, 0)
    heads.append((h.T @ h, h.T @ Y[a:b]))
    del h

norm = lambda a, ax: a / np.maximum(np.linalg.norm(a, axis=ax, keepdims=True), 1e-12)
ht = norm(np.maximum(x[:500] @ w, 0), 1)

t0 = time.perf_counter()
G = heads[0][0] + heads[1][0]
Q = heads[0][1] + heads[1][1]
Wo = np.linalg.solve(G + lam * np.eye(M), Q)
merge = time.perf_counter() - t0
pred_merge = np.argmax(ht @ norm(Wo, 0), 1)
del heads

t0 = time.perf_counter()
hf = np.maximum(x[:f] @ w, 0)
G -= hf.T @ hf
Q -= hf.T @ Y[:f]
Wo = np.linalg.solve(G + lam * np.eye(M), Q)
forget = time.perf_counter() - t0
pred_forget = np.argmax(ht @ norm(Wo, 0), 1)

gram = 8.0 * M * M
print(json.dumps({"M": M, "N": len(y), "forget_rows": f,
                  "numpy_merge_seconds": round(merge, 3), "go_merge_seconds": round(g["merge_seconds"], 3),
                  "merge_speedup_go_over_numpy": round(merge / g["merge_seconds"], 2),
                  "numpy_forget_seconds": round(forget, 3), "go_forget_seconds": round(g["forget_seconds"], 3),
                  "forget_speedup_go_over_numpy": round(forget / g["forget_seconds"], 2),
                  "go_peak_rss_over_G": round(g["peak_rss_bytes"] / gram, 2),
                  "numpy_peak_rss_over_G": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gram, 2),
                  "go_blas": g["blas"], "go_lapack": g["lapack"],
                  "same_predictions_merge": float(np.mean(pred_merge == np.array(g["pred_merge"]))),
                  "same_predictions_forget": float(np.mean(pred_forget == np.array(g["pred_forget"]))),
                  "load_average": [round(v, 2) for v in os.getloadavg()]}))
