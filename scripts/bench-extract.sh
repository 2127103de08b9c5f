#!/bin/sh
# Extraction speed (docs/PERFORMANCE.md "Extraction"): the whole cl pipeline (JPEG files → feature file) vs ONNX
# Runtime alone on ready tensors, same batch and threads, alternating (Go benchmark BenchmarkViTB16), then PyTorch
# eager on the same weights and the same images (scripts/bench_extract_torch.py).
#
# Usage: scripts/bench-extract.sh [MODEL.onnx [ROUNDS [N [BATCH [THREADS]]]]]
#   MODEL defaults to .cache/vitb16.onnx, made by scripts/make-vit-b16.py when missing (343 MB, never commit it).
#   Defaults: 2 rounds, 96 images (500×375 JPEG, generated), batch 32, 2 threads. Run from the repository root.
set -eu
MODEL=${1:-.cache/vitb16.onnx}; ROUNDS=${2:-2}; N=${3:-96}; BATCH=${4:-32}; THREADS=${5:-2}
if [ ! -f "$MODEL" ]; then
	mkdir -p "$(dirname "$MODEL")"
	/usr/bin/python3 scripts/make-vit-b16.py "$MODEL"
fi
: "${CL_ORT_LIB:=$(scripts/install-onnxruntime.sh)}"
export CL_ORT_LIB
imgs=$(mktemp -d); trap 'rm -rf "$imgs"' EXIT
CL_BENCH_VITB16=$MODEL CL_BENCH_IMAGES=$imgs CL_BENCH_N=$N CL_BENCH_BATCH=$BATCH CL_BENCH_THREADS=$THREADS \
	go test ./extract -run '^$' -bench '^BenchmarkViTB16$' -benchtime "${ROUNDS}x" -count 1 -timeout 60m | grep -E '^Benchmark'
/usr/bin/python3 scripts/bench_extract_torch.py "$imgs" --batch "$BATCH" --threads "$THREADS" --rounds "$ROUNDS"
