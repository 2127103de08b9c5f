#!/usr/bin/env bash
# Load test of `cl serve` on loopback, side by side with `cl extract` on the same
# images, backbone and threads (docs/SERVE.md, docs/PERFORMANCE.md).
#
#   scripts/serve-bench.sh MODEL.onnx [THREADS] [REQUESTS]
#
# Starts cl serve on 127.0.0.1:18090 with an empty SimpleCIL head, teaches it 100
# Fashion-MNIST test images, runs scripts/loadgen at concurrency 1, 8 and 64
# (REQUESTS per level, at most 60 s each), stops the server with SIGTERM, then runs
# cl extract on REQUESTS images. Needs /usr/share/datasets/fashion-mnist
# (apt-get install dataset-fashion-mnist) and ONNX Runtime (scripts/install-onnxruntime.sh).
set -euo pipefail
model=${1:?usage: scripts/serve-bench.sh MODEL.onnx [THREADS] [REQUESTS]}
threads=${2:-2}
requests=${3:-400}
cd "$(dirname "$0")/.."
export CL_ORT_LIB=${CL_ORT_LIB:-$(scripts/install-onnxruntime.sh)}
fm=/usr/share/datasets/fashion-mnist
spec=idx:$fm/t10k-images-idx3-ubyte.gz,$fm/t10k-labels-idx1-ubyte.gz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/cl" ./cmd/cl
go build -o "$work/loadgen" ./scripts/loadgen
"$work/cl" serve --model "$model" --method simplecil --state "$work/state" --listen 127.0.0.1:18090 \
  --insecure-no-auth --threads "$threads" --queue 1024 --max-concurrent 256 >"$work/serve.out" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
"$work/loadgen" --url http://127.0.0.1:18090 --data "$spec" --images 256 --learn 100 \
  --concurrency 1,8,64 --requests "$requests" --duration 60s
curl -s http://127.0.0.1:18090/metrics | awk '/^cl_serve_batch_(images|duration_seconds)_(sum|count)/ {v[$1]=$2}
  END {printf "backbone: %d batches, %.2f images/batch, %.2f ms/batch\n", v["cl_serve_batch_images_count"],
    v["cl_serve_batch_images_sum"]/v["cl_serve_batch_images_count"], 1000*v["cl_serve_batch_duration_seconds_sum"]/v["cl_serve_batch_duration_seconds_count"]}'
kill -TERM "$pid"
wait "$pid"
"$work/cl" extract --model "$model" --data "$spec" --limit "$requests" --threads "$threads" --out "$work/x.safetensors" 2>&1 | grep images/s
