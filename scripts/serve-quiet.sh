#!/usr/bin/env bash
# cl serve against its load goals, for a quiet machine (docs/SERVE.md, "Load"):
#
#   scripts/serve-quiet.sh MODEL.onnx [THREADS] [REQUESTS]
#
#   (a) the single-image backbone time: the median of RUNS direct calls of the
#       backbone on one preprocessed image (scripts/loadgen --time-backbone, the
#       server's session options: THREADS threads, idle threads not spinning),
#       the median decode + preprocessing time of one image, and the median of
#       the two together per image ("image": what one image costs cl without a
#       server or batching);
#   (b) cl serve (empty SimpleCIL head taught 100 images, defaults otherwise) under
#       scripts/loadgen at concurrency 1, 8 and 64, REQUESTS requests per level (at
#       most 60 s each): images/s, p50, p99, p99 over the backbone and image
#       medians (goal at concurrency 1: p99 ≤ 1.2 × the single-image backbone
#       time) and over their p99s, and where the median and the slowest 1% of
#       requests spent their time (the Server-Timing header); for a fairer
#       concurrency-1 comparison on a shared machine see scripts/serve-latency.sh;
#       then cl extract images/s on REQUESTS images
#       of the same data with the same threads (goal: served images/s at
#       concurrency 64 ≥ 0.9 × extract's);
#   (c) with SOAK=SECONDS (e.g. SOAK=600), a soak at concurrency 8 for that long,
#       the server's resident set sampled from /metrics every 30 s: min and max.
#
# SERVE_FLAGS: more cl serve flags (e.g. SERVE_FLAGS="--max-batch 8").
# Defaults: THREADS=2, REQUESTS=2000, RUNS=300, SOAK=0. On MobileNetV2 int8 the
# default run takes about 2-4 minutes (plus SOAK). Cut the model first:
#   cl models cut ../shared/data/mobilenetv2-12-int8.onnx --tensor 464_quantized \
#     --preprocess imagenet --out mnv2.onnx
# Images: Fashion-MNIST test images (apt-get install dataset-fashion-mnist), sent
# as 28×28 grey PNGs. Needs ONNX Runtime (scripts/install-onnxruntime.sh) and curl.
# The load averages printed before each part say how quiet the machine was.
set -euo pipefail
model=${1:?usage: scripts/serve-quiet.sh MODEL.onnx [THREADS] [REQUESTS]}
threads=${2:-2}
requests=${3:-2000}
runs=${RUNS:-300}
soak=${SOAK:-0}
model=$(realpath "$model")
cd "$(dirname "$0")/.."
export CL_ORT_LIB=${CL_ORT_LIB:-$(scripts/install-onnxruntime.sh)}
fm=/usr/share/datasets/fashion-mnist
[ -f "$fm/t10k-images-idx3-ubyte.gz" ] || { echo "serve-quiet: no Fashion-MNIST in $fm: apt-get install -y dataset-fashion-mnist" >&2; exit 1; }
spec=idx:$fm/t10k-images-idx3-ubyte.gz,$fm/t10k-labels-idx1-ubyte.gz
port=${PORT:-18091}
url=http://127.0.0.1:$port
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
load() { echo "  [$(date -u +%H:%M:%S) load average: $(cut -d' ' -f1-3 /proc/loadavg)]"; }

echo "serve-quiet: $(basename "$model"), $threads threads, $requests requests per level, $(nproc) CPUs"
go build -o "$work/cl" ./cmd/cl
go build -o "$work/loadgen" ./scripts/loadgen

echo "(a) single-image backbone time ($runs calls)"; load
spin=()
[ -n "${CL_SERVE_SPIN:-}" ] && spin=(--spin) # the server lets idle threads spin then, so time it so
"$work/loadgen" --time-backbone "$model" --threads "$threads" "${spin[@]}" --data "$spec" --images 256 --runs "$runs" | tee "$work/bb.txt"
bb=$(awk '$1 == "backbone_median_ms" {print $2}' "$work/bb.txt")
bb99=$(awk '$1 == "backbone_p99_ms" {print $2}' "$work/bb.txt")
one=$(awk '$1 == "image_median_ms" {print $2}' "$work/bb.txt")
one99=$(awk '$1 == "image_p99_ms" {print $2}' "$work/bb.txt")

echo "(b) cl serve on $url, concurrency 1, 8, 64"; load
"$work/cl" serve --model "$model" --method simplecil --state "$work/state" --listen "127.0.0.1:$port" \
  --insecure-no-auth --threads "$threads" --queue 1024 --max-concurrent 256 ${SERVE_FLAGS:-} >"$work/serve.out" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 300); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
grep -q listening "$work/serve.out" || { echo "cl serve did not start:"; cat "$work/serve.log"; exit 1; }
"$work/loadgen" --url "$url" --data "$spec" --images 256 --learn 100 \
  --concurrency 1,8,64 --requests "$requests" --duration 60s --ref-ms "backbone=$bb,image=$one,backbone_p99=$bb99,image_p99=$one99"
curl -s "$url/metrics" | awk '/^cl_serve_batch_(images|duration_seconds)_(sum|count)/ {v[$1]=$2}
  END {printf "  backbone in the server: %d batches, %.2f images/batch, %.2f ms/batch\n", v["cl_serve_batch_images_count"],
    v["cl_serve_batch_images_sum"]/v["cl_serve_batch_images_count"], 1000*v["cl_serve_batch_duration_seconds_sum"]/v["cl_serve_batch_duration_seconds_count"]}'

if [ "$soak" -gt 0 ]; then
  echo "(c) soak: concurrency 8 for $soak s, resident set every 30 s"; load
  rss() { curl -s "$url/metrics" | awk '$1 == "process_resident_memory_bytes" {printf "%.1f", $2/1048576}'; }
  "$work/loadgen" --url "$url" --data "$spec" --images 256 --concurrency 8 --requests 1000000000 \
    --duration "${soak}s" --warmup 0 >"$work/soak.txt" &
  lg=$!
  samples=$(rss)
  while kill -0 "$lg" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$lg" 2>/dev/null || break; sleep 1; done
    kill -0 "$lg" 2>/dev/null && samples="$samples $(rss)"
  done
  wait "$lg"
  cat "$work/soak.txt"
  echo "$samples" | tr ' ' '\n' | awk 'NR == 1 {min = max = $1} {if ($1 < min) min = $1; if ($1 > max) max = $1; n++}
    END {printf "  resident set: %d samples, min %.1f MiB, max %.1f MiB\n", n, min, max}'
  echo "  samples (MiB): $samples"
fi

kill -TERM "$pid"
wait "$pid"
pid=
echo "cl extract on $requests images, $threads threads"; load
"$work/cl" extract --model "$model" --data "$spec" --limit "$requests" --threads "$threads" --out "$work/x.safetensors" 2>&1 | grep images/s
load
