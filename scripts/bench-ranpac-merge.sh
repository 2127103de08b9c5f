#!/bin/sh
# What cl merge and cl forget do to RanPAC heads (in memory, no files), Go
# against the same steps in numpy + OpenBLAS (scripts/bench_ranpac_merge.py),
# side by side on the same inputs: two heads fitted on the halves of N rows,
# merged and re-solved, then the first N/10 rows forgotten and re-solved.
# Go's BLAS and LAPACK as in scripts/bench-ranpac.sh (CL_BLAS=openblas: what
# the cl binary runs).
# Usage: [CL_BLAS=openblas] scripts/bench-ranpac-merge.sh [M [N [ROUNDS]]]   (defaults 2000 10000 1)
# Prints one JSON line per round. Run from the repository root.
set -eu
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE # both sides on the CPU's own OpenBLAS kernels (see bench-ranpac.sh)
M=${1:-2000}; N=${2:-10000}; ROUNDS=${3:-1}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/heads.test" ./heads
i=0
while [ "$i" -lt "$ROUNDS" ]; do
	(cd heads && RANPAC_BENCH_M=$M RANPAC_BENCH_N=$N RANPAC_BENCH_DIR=$dir "$dir/heads.test" -test.run '^$' \
		-test.bench '^BenchmarkRanPACMergeForget$' -test.benchtime 1x -test.count 1 -test.timeout 0 | grep -E '^Benchmark' >&2)
	/usr/bin/python3 scripts/bench_ranpac_merge.py "$dir"
	i=$((i + 1))
done
