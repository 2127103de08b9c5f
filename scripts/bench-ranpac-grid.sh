#!/bin/sh
# The RanPAC grid of issue 12, side by side: for every M in $MS and N in $NS
# one stage of Go (the BLAS chosen by CL_BLAS: unset = pure-Go FastBLAS,
# CL_BLAS=openblas = OpenBLAS opened at run time, with its LAPACK) against
# numpy + OpenBLAS replaying PILOT's procedure on the same inputs
# (scripts/bench-ranpac.sh). Prints one JSON line per grid point (times,
# speed-up, seconds and GFLOP/s per phase, peak memory of both in units of one
# M×M float64 matrix, both λ, same predictions, load average).
# Usage: [CL_BLAS=openblas] [MS="2000 4000 6000 10000"] [NS="3000 5000 20000"] scripts/bench-ranpac-grid.sh
set -eu
MS=${MS:-"2000 4000 6000 10000"}
NS=${NS:-"3000 5000 20000"}
for m in $MS; do
	for n in $NS; do
		scripts/bench-ranpac.sh "$m" "$n" 1 2>/dev/null
	done
done
