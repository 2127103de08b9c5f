#!/bin/sh
# FeCAM or streaming LDA fitting speed, Go (the BLAS and LAPACK chosen by
# CL_BLAS: unset = pure Go, CL_BLAS=openblas = OpenBLAS opened at run time)
# against the same method in numpy + OpenBLAS (scripts/bench_stathead.py),
# side by side on the same inputs.
# Usage: [CL_BLAS=openblas] [BASE=<git revision>] scripts/bench-stathead.sh [METHOD [N [D [C [ROUNDS]]]]]
#        (defaults fecam 6000 768 10 1)
# Prints one JSON line per round: both times, the speed-up, both peak RSS,
# the fraction of identical predictions, the load average. With BASE set,
# each round runs the benchmark of that revision (git archive, built in a
# temporary directory) and then the working tree's, each followed by numpy:
# before and after alternated ("build" in each line). Run from the
# repository root.
set -eu
# Both sides run OpenBLAS with the CPU's own kernels: an OPENBLAS_CORETYPE or
# OPENBLAS_L2_SIZE in the environment (this project's machines set Haswell)
# would hold one side to other kernels (AVX2 instead of AVX-512: half the rate).
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
METHOD=${1:-fecam}; N=${2:-6000}; D=${3:-768}; C=${4:-10}; ROUNDS=${5:-1}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
. scripts/heads-test-builds.sh
i=0
while [ "$i" -lt "$ROUNDS" ]; do
	for b in $builds; do
		(cd heads && STATHEAD_BENCH_METHOD=$METHOD STATHEAD_BENCH_N=$N STATHEAD_BENCH_D=$D STATHEAD_BENCH_C=$C \
			STATHEAD_BENCH_DIR=$dir "$dir/$b.test" -test.run '^$' -test.bench '^BenchmarkStatHeadFit$' \
			-test.benchtime 1x -test.count 1 -test.timeout 0 | grep -E '^Benchmark' >&2)
		BENCH_BUILD=$b /usr/bin/python3 scripts/bench_stathead.py "$dir"
	done
	i=$((i + 1))
done
