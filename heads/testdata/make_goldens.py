#!/usr/bin/python3
"""Make the golden files of heads/golden_test.go (numpy only).

Run from this folder:  /usr/bin/python3 make_goldens.py

Synthetic clustered features: 10 classes, D = 64, 40 train and 20 test rows
per class; each class has its own mean (on a common offset, as backbone
features are not centred) and its own anisotropic covariance, so FeCAM and
LDA differ from the prototype heads. The reference scores are computed here
independently of the Go code, straight from the published formulas:

  simplecil  cos(x, mu_c)                          (METHODS 2.1)
  ncm        -||x - mu_c||^2
  lda        w_c.x + b_c, Lambda = ((1-eps) S + eps I)^-1, S pooled within-class
             covariance / N, eps = 1e-4            (Hayes & Kanan 2020)
  fecam_paper, fecam_paper_g2  FeCAM_vit_cifar100.py: L2-normalised rows,
             np.cov, shrink (gamma1 = 1, gamma2 = 0 or 1), D^-1/2 S D^-1/2, pinv
  fecam_pilot  PILOT models/fecam.py: raw rows, np.cov + 100 I, np.corrcoef,
             pinv, L2-normalised x and mu

pinv uses rcond = D * float32 eps (torch's default for float32 inputs).
Files: *.npy; x float32, labels and predictions int64, scores float64.
"""
import numpy as np

rng = np.random.default_rng(1993)
C, D, NTR, NTE = 10, 64, 40, 20
offset = rng.normal(0, 1.0, D)
means = offset + rng.normal(0, 0.1, (C, D))
mix = [rng.normal(0, 1, (D, D)) * rng.uniform(0.02, 0.12, D) for _ in range(C)]


def sample(n):
    xs, ys = [], []
    for c in range(C):
        z = rng.normal(0, 1, (n, D))
        xs.append(means[c] + z @ mix[c].T)
        ys.append(np.full(n, c))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    p = rng.permutation(len(y))
    return x[p], y[p]


xtr, ytr = sample(NTR)
xte, yte = sample(NTE)
X, T = xtr.astype(np.float64), xte.astype(np.float64)
RCOND = D * np.finfo(np.float32).eps


def l2n(a):
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def simplecil():
    mu = np.stack([X[ytr == c].mean(0) for c in range(C)])
    return l2n(T) @ l2n(mu).T


def ncm():
    mu = np.stack([X[ytr == c].mean(0) for c in range(C)])
    return -((T[:, None, :] - mu[None]) ** 2).sum(-1)


def lda(eps=1e-4):
    mu = np.stack([X[ytr == c].mean(0) for c in range(C)])
    S = np.zeros((D, D))
    for c in range(C):
        Z = X[ytr == c] - mu[c]
        S += Z.T @ Z
    S /= len(ytr)
    Lam = np.linalg.inv((1 - eps) * S + eps * np.eye(D))
    W = Lam @ mu.T
    b = -0.5 * np.sum(mu.T * W, axis=0)
    return T @ W + b


def shrink_cov(cov, a1, a2):
    diag_mean = np.mean(np.diagonal(cov))
    off = np.copy(cov)
    np.fill_diagonal(off, 0.0)
    mask = off != 0.0
    off_mean = (off * mask).sum() / mask.sum()
    iden = np.eye(cov.shape[0])
    return cov + a1 * diag_mean * iden + a2 * off_mean * (1 - iden)


def normalize_cov(cov):
    sd = np.sqrt(np.diagonal(cov))
    return cov / np.outer(sd, sd)


def maha(dist, prec):
    return np.einsum("nd,de,ne->n", dist, prec, dist)


def fecam_paper(a2):
    Xn, Tn = l2n(X), l2n(T)
    out = np.zeros((len(T), C))
    for c in range(C):
        v = Xn[ytr == c]
        mu = v.mean(0)
        P = np.linalg.pinv(normalize_cov(shrink_cov(np.cov(v.T), 1.0, a2)), rcond=RCOND, hermitian=True)
        out[:, c] = -maha(Tn - mu, P)
    return out


def fecam_pilot(alpha=100.0):
    Tn = l2n(T)
    out = np.zeros((len(T), C))
    for c in range(C):
        v = X[ytr == c]
        mu = l2n(v.mean(0))
        M = np.cov(v.T) + alpha * np.eye(D)
        R = np.clip(np.corrcoef(M), -1, 1)
        P = np.linalg.pinv(R, rcond=RCOND, hermitian=True)
        out[:, c] = -maha(Tn - mu, P)
    return out


np.save("train_x.npy", xtr)
np.save("train_y.npy", ytr)
np.save("test_x.npy", xte)
np.save("test_y.npy", yte)
for name, s in [("simplecil", simplecil()), ("ncm", ncm()), ("lda", lda()),
                ("fecam_paper", fecam_paper(0.0)), ("fecam_paper_g2", fecam_paper(1.0)),
                ("fecam_pilot", fecam_pilot())]:
    pred = s.argmax(1).astype(np.int64)
    np.save(name + "_scores.npy", s.astype(np.float64))
    np.save(name + "_pred.npy", pred)
    top2 = np.sort(s, 1)[:, -2:]
    print(f"{name:15s} accuracy {np.mean(pred == yte):.3f}  min top-2 margin {np.min(top2[:, 1] - top2[:, 0]):.3g}")
