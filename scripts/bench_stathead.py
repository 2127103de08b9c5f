#!/usr/bin/python3
"""numpy side of scripts/bench-stathead.sh: FeCAM (variant=paper) or
streaming LDA fitted in numpy (float64) on the inputs the Go benchmark
(heads BenchmarkStatHeadFit) wrote to DIR (x.npy, go.json), timed, and
compared with Go's predictions on the first 500 rows.

The same method as cl's heads (docs/HEADS.md), written as a numpy user would:

FeCAM, paper variant (gamma1 = 1, gamma2 = 0): rows L2-normalised; per class
the mean m_c and the unbiased covariance Σ_c (np.cov); S = Σ_c + γ1·mean(diag
Σ_c)·I + γ2·mean(non-zero off-diagonal)·(1 − I); C = D^-1/2 S D^-1/2 with
D = diag(S); P_c = pinv(C) (np.linalg.pinv, hermitian, dropping eigenvalues
≤ d·2⁻²³·max|λ| as cl does); score −(x̂ − m_c)ᵀ P_c (x̂ − m_c).

LDA (shrinkage ε = 1e-4): per class means μ_c; pooled within-class
covariance Σ = (XᵀX − Σ_c n_c μ_c μ_cᵀ)/N; W = ((1−ε)Σ + εI)⁻¹ μ
(np.linalg.solve); b_c = −½ μ_cᵀ w_c; score w_cᵀx + b_c.

Prints one JSON line: both times (and Go's learn/EndStage split), the
speed-up, peak RSS of both processes in MiB, the fraction of identical
predictions and the load average; for LDA also numpy_scatter_seconds, the
time of x.T @ x alone (one dsyrk) measured after the fit.
"""
import json
import os
import resource
import sys
import time

import numpy as np

d = sys.argv[1]
x = np.load(d + "/x.npy").astype(np.float64)
g = json.load(open(d + "/go.json"))
y = np.array(g["y"])
labels = np.unique(y)
N, D = x.shape

steps = {}
t0 = time.perf_counter()
if g["method"] == "fecam":
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    means, precs = [], []
    for l in labels:
        xc = xn[y == l]
        m = xc.mean(0)
        cov = np.cov(xc, rowvar=False)
        diag = np.mean(np.diag(cov))
        off = cov[~np.eye(D, dtype=bool)]
        off = off[off != 0].mean() if np.any(off != 0) else 0.0
        s = cov + 1.0 * diag * np.eye(D) + 0.0 * off * (1 - np.eye(D))
        sd = np.sqrt(np.diag(s))
        c = s / np.outer(sd, sd)
        precs.append(np.linalg.pinv(c, rcond=D * 2.0 ** -23, hermitian=True))
        means.append(m)
    secs = time.perf_counter() - t0
    xt = xn[:500]
    scores = np.stack([-np.sum(((xt - m) @ p) * (xt - m), 1) for m, p in zip(means, precs)], 1)
else:
    eps = 1e-4
    mu = np.stack([x[y == l].mean(0) for l in labels], 1)  # D×C
    cnt = np.array([np.sum(y == l) for l in labels])
    sigma = (x.T @ x - (mu * cnt) @ mu.T) / N
    sigma = (1 - eps) * sigma + eps * np.eye(D)
    w = np.linalg.solve(sigma, mu)
    b = -0.5 * np.sum(w * mu, 0)
    secs = time.perf_counter() - t0
    scores = x[:500] @ w + b
    # The scatter alone (one OpenBLAS dsyrk, as numpy runs a matrix times its
    # own transpose), timed after the fit: the floor of both sides' fits.
    t1 = time.perf_counter()
    x.T @ x
    steps = {"numpy_scatter_seconds": round(time.perf_counter() - t1, 3)}

pred = np.argmax(scores, 1)
same = float(np.mean(pred == np.array(g["pred"])))
print(json.dumps({"build": os.environ.get("BENCH_BUILD", ""), "method": g["method"], "N": N, "D": D, "C": len(labels),
                  "numpy_seconds": round(secs, 2), "go_seconds": round(g["seconds"], 2),
                  "speedup_go_over_numpy": round(secs / g["seconds"], 2),
                  "go_learn_seconds": round(g["learn_seconds"], 2),
                  "go_endstage_seconds": round(g["endstage_seconds"], 2),
                  "go_peak_rss_MiB": round(g["peak_rss_bytes"] / 2 ** 20, 1),
                  "numpy_peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "go_blas": g["blas"], "go_lapack": g["lapack"],
                  "same_predictions": same, **steps,
                  "load_average": [round(v, 2) for v in os.getloadavg()]}))
