#!/usr/bin/env bash
# Side by side, alternating: one APER-adapter training step of ViT-Ti/16 at 224, batch 32 — cl (gradient graph on
# ONNX Runtime + Go SGD) vs PyTorch eager (Debian torch 1.13) — and the forward pass alone, with peak RSS of each
# process. usage: scripts/bench-train.sh [CHECKPOINT] [THREADS] [ROUNDS]
# CHECKPOINT defaults to ../shared/data/vit-tiny-augreg/model.safetensors. Numbers go to docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=$(realpath "${1:-../shared/data/vit-tiny-augreg/model.safetensors}")
threads=${2:-2}
rounds=${3:-2}
export CL_ORT_LIB=${CL_ORT_LIB:-$(scripts/install-onnxruntime.sh)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/tune.test" ./tune
for r in $(seq "$rounds"); do
  echo "round $r"
  for what in TrainStep Forward; do
    (cd tune && CL_VIT_TINY=$ckpt CL_BENCH_THREADS=$threads /usr/bin/time -f "  cl $what peak RSS %M KiB" \
      "$tmp/tune.test" -test.run '^$' -test.bench "^Benchmark$what\$" -test.benchtime 5x 2>&1 | grep -E "Benchmark|peak RSS")
  done
  /usr/bin/time -f "  torch train step peak RSS %M KiB" /usr/bin/python3 scripts/bench-train.py "$ckpt" "$threads" 5 2>&1 | sed 's/^/  /'
  /usr/bin/time -f "  torch forward peak RSS %M KiB" /usr/bin/python3 scripts/bench-train.py "$ckpt" "$threads" 5 --forward 2>&1 | sed 's/^/  /'
done
