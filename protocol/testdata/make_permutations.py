#!/usr/bin/python3
"""Golden class orders for protocol.Permutation (docs/METHODS.md §3.1).

Prints, for several seeds and sizes, numpy's legacy
`np.random.seed(seed); np.random.permutation(n)` — the call PILOT's
DataManager makes to shuffle the class order. Run with Debian's python3
(numpy 1.24):

    /usr/bin/python3 protocol/testdata/make_permutations.py > protocol/testdata/permutations.json

The Go test reads permutations.json; it never runs Python.
"""
import json

import numpy as np

SEEDS = [0, 1, 42, 1993, 2**31 - 1, 2**32 - 1]
SIZES = [1, 2, 10, 50, 100, 1000]

cases = []
for seed in SEEDS:
    for n in SIZES:
        np.random.seed(seed)
        cases.append({"seed": seed, "n": n, "order": np.random.permutation(n).tolist()})

print(json.dumps({"numpy": np.__version__, "cases": cases}))
