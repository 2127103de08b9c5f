#!/usr/bin/env bash
# cl serve's latency at concurrency 1 against the single-image backbone time,
# several server settings alternated in one run (docs/SERVE.md, "Latency of a
# lone request"):
#
#   scripts/serve-latency.sh MODEL.onnx [ROUNDS] [REQUESTS]
#
# For each of ROUNDS rounds, for each setting of CONFIGS in turn:
#   1. the reference: RUNS direct single-image calls of the backbone with the
#      setting's session options (scripts/loadgen --time-backbone): the
#      backbone's Run alone, and decode + preprocessing + Run ("image"), median
#      and p99;
#   2. right after, cl serve with that setting (an empty SimpleCIL head taught
#      100 images), REQUESTS one-image predicts at concurrency 1 (after 20
#      warm-up requests): p50, p99, and where the slowest 1% spent their time
#      (the server's Server-Timing header);
#   and the load average before each. One line per round and setting, then per
#   setting the median over the rounds of each column.
#
# CONFIGS (default "threads=2 threads=1") is a space-separated list of
# settings, each comma-separated keys: threads=N (--threads, for the server
# and the reference), spin (let idle ONNX Runtime threads spin: CL_SERVE_SPIN=1
# and loadgen --spin), gogc=N (the server's GOGC), procs=N (the server's
# GOMAXPROCS), and any other key=value is passed to cl serve as --key value.
#
# Columns: p99/bb50 = served p99 over the backbone median (the goal, ≤ 1.2);
# p99/bb99 = over the backbone's own p99; p99/img50 and p99/img99 = over
# decode + preprocessing + backbone (what the server does for one image
# besides HTTP and scoring); tail: the mean milliseconds the slowest 1% of
# requests spent in the backbone, in decode, and outside the server's handler
# (client, connection, kernel).
#
# Defaults: ROUNDS=3, REQUESTS=1000, RUNS=300. On MobileNetV2 int8 with the two
# default settings this takes about 1 minute (ViT-Ti: about 3). Images:
# Fashion-MNIST test images sent as 28×28 grey PNGs (apt-get install
# dataset-fashion-mnist). Needs ONNX Runtime (scripts/install-onnxruntime.sh).
set -euo pipefail
model=${1:?usage: scripts/serve-latency.sh MODEL.onnx [ROUNDS] [REQUESTS]}
rounds=${2:-3}
requests=${3:-1000}
runs=${RUNS:-300}
configs=${CONFIGS:-threads=2 threads=1}
model=$(realpath "$model")
cd "$(dirname "$0")/.."
export CL_ORT_LIB=${CL_ORT_LIB:-$(scripts/install-onnxruntime.sh)}
fm=/usr/share/datasets/fashion-mnist
[ -f "$fm/t10k-images-idx3-ubyte.gz" ] || { echo "serve-latency: no Fashion-MNIST in $fm: apt-get install -y dataset-fashion-mnist" >&2; exit 1; }
spec=idx:$fm/t10k-images-idx3-ubyte.gz,$fm/t10k-labels-idx1-ubyte.gz
port=${PORT:-18092}
url=http://127.0.0.1:$port
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "serve-latency: $(basename "$model"), $rounds rounds of {$configs}, $requests requests at concurrency 1, $runs reference calls, $(nproc) CPUs"
if [ -n "${CL:-}" ]; then cp "$CL" "$work/cl"; else go build -o "$work/cl" ./cmd/cl; fi # CL=BINARY: a cl already built
go build -o "$work/loadgen" ./scripts/loadgen

fmt="%-5s %-28s %5s %6s %6s %6s %6s %6s %6s %7s %7s %7s %7s %6s %6s %6s\n"
printf "$fmt" round setting load bb50 bb99 img50 img99 p50 p99 p99/bb50 p99/bb99 p99/img50 p99/img99 tailbb taildec tailout | tee "$work/table"
for r in $(seq "$rounds"); do
  for cfg in $configs; do
    threads=0 ref=() env=() flags=()
    for kv in ${cfg//,/ }; do
      k=${kv%%=*} v=${kv#*=}
      case $k in
        threads) threads=$v ;;
        spin) ref+=(--spin); env+=(CL_SERVE_SPIN=1) ;;
        gogc) env+=(GOGC="$v") ;;
        procs) env+=(GOMAXPROCS="$v") ;;
        *) flags+=(--"$k" "$v") ;;
      esac
    done
    la=$(cut -d' ' -f1 /proc/loadavg)
    "$work/loadgen" --time-backbone "$model" --threads "$threads" "${ref[@]}" --data "$spec" --images 256 --runs "$runs" >"$work/bb.txt"
    get() { awk -v k="$1" '$1 == k {print $2}' "$work/bb.txt"; }
    bb50=$(get backbone_median_ms) bb99=$(get backbone_p99_ms) img50=$(get image_median_ms) img99=$(get image_p99_ms)
    rm -rf "$work/state"
    env "${env[@]}" "$work/cl" serve --model "$model" --method simplecil --state "$work/state" --listen "127.0.0.1:$port" \
      --insecure-no-auth --threads "$threads" "${flags[@]}" >"$work/serve.out" 2>"$work/serve.log" &
    pid=$!
    for _ in $(seq 600); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
    grep -q listening "$work/serve.out" || { echo "cl serve did not start:"; cat "$work/serve.log"; exit 1; }
    "$work/loadgen" --url "$url" --data "$spec" --images 256 --learn 100 --concurrency 1 --requests "$requests" \
      --duration 120s >"$work/lg.txt"
    kill -TERM "$pid"; wait "$pid" || true; pid=
    awk -v r="$r" -v cfg="$cfg" -v la="$la" -v bb50="$bb50" -v bb99="$bb99" -v img50="$img50" -v img99="$img99" -v fmt="$fmt" '
      /^concurrency/ { for (i = 1; i <= NF; i++) { if ($i == "p50") p50 = $(i+1); if ($i == "p99") p99 = $(i+1) } }
      /phases ms/ { for (i = 1; i <= NF; i++) { if ($i == "backbone") tb = $(i+2); if ($i == "decode") td = $(i+2); if ($i == "outside") to = $(i+2) } }
      END { printf fmt, r, cfg, la, bb50, bb99, img50, img99, p50, p99, sprintf("%.2f", p99/bb50), sprintf("%.2f", p99/bb99),
              sprintf("%.2f", p99/img50), sprintf("%.2f", p99/img99), tb, td, to }' "$work/lg.txt" | tee -a "$work/table"
  done
done
echo "medians over the rounds:"
for cfg in $configs; do
  awk -v cfg="$cfg" -v fmt="$fmt" '
    NR > 1 && $2 == cfg { n++; for (c = 3; c <= 16; c++) v[c, n] = $c }
    END {
      line = sprintf("%-5s %-28s", "med", cfg)
      for (c = 3; c <= 16; c++) {
        for (i = 1; i <= n; i++) a[i] = v[c, i]
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        line = line sprintf(" %6.2f", m)
      }
      print line
    }' "$work/table"
done
echo "  [$(date -u +%H:%M:%S) load average: $(cut -d' ' -f1-3 /proc/loadavg)]"
