#!/usr/bin/env bash
# Side by side, alternating: one APER-adapter training step of ViT-Ti/16 at 224 — cl (gradient graph on ONNX Runtime
# + Go SGD, tune.BenchmarkTrainStep) vs PyTorch eager (Debian torch 1.13, scripts/bench-train.py) — and the forward
# pass alone, each process under /usr/bin/time for its peak RSS; the load average is printed before every round.
# Each benchmark process times STEPS steps after one warm-up step and prints wall and CPU seconds per step.
# usage: scripts/bench-train.sh [CHECKPOINT] [THREADS] [ROUNDS] [BATCH] [STEPS]
# CHECKPOINT defaults to ../shared/data/vit-tiny-augreg/model.safetensors; THREADS 2, ROUNDS 2, BATCH 32, STEPS 5.
# Numbers go to docs/PERFORMANCE.md ("Training step").
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=$(realpath "${1:-../shared/data/vit-tiny-augreg/model.safetensors}")
threads=${2:-2}
rounds=${3:-2}
batch=${4:-32}
steps=${5:-5}
export CL_ORT_LIB=${CL_ORT_LIB:-$(scripts/install-onnxruntime.sh)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/tune.test" ./tune
echo "batch $batch, $threads threads, $steps steps per process; $(nproc) cores"
for r in $(seq "$rounds"); do
  echo "round $r: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for what in TrainStep Forward; do
    (cd tune && CL_VIT_TINY=$ckpt CL_BENCH_THREADS=$threads CL_BENCH_BATCH=$batch /usr/bin/time -f "  cl $what peak RSS %M KiB" \
      "$tmp/tune.test" -test.run '^$' -test.bench "^Benchmark$what\$" -test.benchtime "${steps}x" 2>&1 | grep -E "^Benchmark|peak RSS" | sed 's/^Bench/  Bench/')
  done
  /usr/bin/time -f "  torch train step peak RSS %M KiB" /usr/bin/python3 scripts/bench-train.py "$ckpt" "$threads" "$steps" --batch "$batch" 2>&1 | sed 's/^torch/  torch/'
  /usr/bin/time -f "  torch forward peak RSS %M KiB" /usr/bin/python3 scripts/bench-train.py "$ckpt" "$threads" "$steps" --batch "$batch" --forward 2>&1 | sed 's/^torch/  torch/'
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
