#!/bin/sh
# RanPAC stage speed, Go vs numpy + OpenBLAS doing PILOT's procedure, side by
# side on the same inputs (same W, same split). Go's BLAS and LAPACK: pure Go
# by default; CL_BLAS=openblas = OpenBLAS opened at run time with its own
# LAPACK (what the cl binary runs), plus CL_LAPACK=gonum = gonum's LAPACK over
# OpenBLAS's BLAS.
# Usage: [CL_BLAS=openblas] [BASE=<git revision>] scripts/bench-ranpac.sh [M [N [ROUNDS]]]   (defaults 2000 5000 1)
# Prints one JSON line per round with both times, the ratio, seconds and
# GFLOP/s per phase of both sides, both peak memories, both λ, the fraction
# of identical predictions and the load average. With BASE set, each round
# runs the benchmark of that revision (git archive, built in a temporary
# directory) and then the working tree's, each followed by numpy on its
# inputs: before and after alternated on the same moments of the machine
# ("build" in each line says which). Run from the repository root.
set -eu
# Both sides run OpenBLAS with the CPU's own kernels: an OPENBLAS_CORETYPE or
# OPENBLAS_L2_SIZE in the environment (this project's machines set Haswell)
# would hold one side to other kernels (AVX2 instead of AVX-512: half the rate).
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
M=${1:-2000}; N=${2:-5000}; ROUNDS=${3:-1}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
. scripts/heads-test-builds.sh
i=0
while [ "$i" -lt "$ROUNDS" ]; do
	for b in $builds; do
		(cd heads && RANPAC_BENCH_M=$M RANPAC_BENCH_N=$N RANPAC_BENCH_DIR=$dir \
			"$dir/$b.test" -test.run '^$' -test.bench '^BenchmarkRanPACStage$' -test.benchtime 1x -test.benchmem \
			-test.count 1 -test.timeout 0 | grep -E '^Benchmark' >&2)
		BENCH_BUILD=$b /usr/bin/python3 scripts/bench_ranpac.py "$dir"
	done
	i=$((i + 1))
done
