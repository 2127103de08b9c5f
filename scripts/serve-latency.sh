#!/usr/bin/env bash
# cl serve's latency at concurrency 1 against the single-image backbone time,
# several server settings alternated in one run (docs/SERVE.md, "Latency of a
# lone request"):
#
#   scripts/serve-latency.sh MODEL.onnx [ROUNDS] [REQUESTS]
#
# One cl serve per setting of CONFIGS (each an empty SimpleCIL head taught 100
# images), all running at once; then ROUNDS rounds of scripts/loadgen --streams,
# which takes turns, at concurrency 1: one predict of one image to each server,
# and one direct decode + preprocess + Run of the same image on the backbone
# in its own process with each setting's session options (the reference:
# "bb" the Run alone, "img" the three together), REQUESTS turns each (after 20
# warm-up turns). Every stream sees the same moments of the machine, which a
# shared, loaded machine needs for a fair comparison. One line per round and
# setting, then per setting the median over the rounds of each column, and the
# load average.
#
# CONFIGS (default "threads=2 threads=1") is a space-separated list of
# settings, each comma-separated keys: threads=N (--threads, for the server
# and the reference), spin (let idle ONNX Runtime threads spin: cl serve
# --ort-spin and loadgen --spin), gogc=N (the server's GOGC), procs=N (the
# server's GOMAXPROCS); any other key=value is passed to cl serve as
# --key value (e.g. max-batch=1), and a bare key as --key.
#
# Columns: p99/bb50 = served p99 over the backbone median (the goal, ≤ 1.2);
# p99/bb99 = over the backbone's own p99; p99/img50 and p99/img99 = over
# decode + preprocessing + backbone (what the server does for one image
# besides HTTP and scoring); sbb99: the p99 of the backbone call inside the
# server (Server-Timing), to hold against bb99; tail: the mean milliseconds the
# slowest 1% of requests spent in the backbone, in decode, and outside the
# server's handler: "net" from the request written to the reply's first byte
# (net/http around the handler, loopback, the kernel scheduling the server)
# and "cli" in the client (writing the request, reading the reply).
#
# Defaults: ROUNDS=3, REQUESTS=1000. On MobileNetV2 int8 with the two default
# settings this takes about 1 minute (ViT-Ti: about 3). Images:
# Fashion-MNIST test images sent as 28×28 grey PNGs (apt-get install
# dataset-fashion-mnist). Needs ONNX Runtime (scripts/install-onnxruntime.sh).
set -euo pipefail
model=${1:?usage: scripts/serve-latency.sh MODEL.onnx [ROUNDS] [REQUESTS]}
rounds=${2:-3}
requests=${3:-1000}
configs=${CONFIGS:-threads=2 threads=1}
model=$(realpath "$model")
cd "$(dirname "$0")/.."
export CL_ORT_LIB=${CL_ORT_LIB:-$(scripts/install-onnxruntime.sh)}
fm=/usr/share/datasets/fashion-mnist
[ -f "$fm/t10k-images-idx3-ubyte.gz" ] || { echo "serve-latency: no Fashion-MNIST in $fm: apt-get install -y dataset-fashion-mnist" >&2; exit 1; }
spec=idx:$fm/t10k-images-idx3-ubyte.gz,$fm/t10k-labels-idx1-ubyte.gz
port=${PORT:-18092}
work=$(mktemp -d)
pid=
cleanup() {
  for p in $pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "serve-latency: $(basename "$model"), settings {$configs}, $rounds rounds of $requests turns at concurrency 1, $(nproc) CPUs"
if [ -n "${CL:-}" ]; then cp "$CL" "$work/cl"; else go build -o "$work/cl" ./cmd/cl; fi # CL=BINARY: a cl already built
go build -o "$work/loadgen" ./scripts/loadgen

# Start one server per setting; streams: s<i>=URL, and one reference per
# distinct (threads, spin): r<threads>[s]=backbone:THREADS[:spin].
pids=() streams= refs= i=0
declare -A refof
for cfg in $configs; do
  i=$((i + 1))
  threads=0 spin= env=() flags=()
  for kv in ${cfg//,/ }; do
    k=${kv%%=*} v=${kv#*=}
    case $k in
      threads) threads=$v ;;
      spin) spin=:spin; flags+=(--ort-spin) ;;
      gogc) env+=(GOGC="$v") ;;
      procs) env+=(GOMAXPROCS="$v") ;;
      *) if [ "$kv" = "$k" ]; then flags+=(--"$k"); else flags+=(--"$k" "$v"); fi ;;
    esac
  done
  p=$((port + i))
  env "${env[@]}" "$work/cl" serve --model "$model" --method simplecil --state "$work/state$i" --listen "127.0.0.1:$p" \
    --insecure-no-auth --threads "$threads" "${flags[@]}" >"$work/serve$i.out" 2>"$work/serve$i.log" &
  pids+=($!)
  r=r$threads${spin:+s}
  refof[s$i]=$r
  streams="$streams,s$i=http://127.0.0.1:$p"
  case ",$refs," in *",$r="*) ;; *) refs="$refs,$r=backbone:$threads$spin" ;; esac
done
for i in $(seq ${#pids[@]}); do
  for _ in $(seq 600); do grep -q listening "$work/serve$i.out" && break; sleep 0.1; done
  grep -q listening "$work/serve$i.out" || { echo "cl serve (setting $i) did not start:"; cat "$work/serve$i.log"; exit 1; }
done
pid="${pids[*]}"

fmt="%-5s %-28s %5s %6s %6s %6s %6s %6s %6s %7s %7s %7s %7s %6s %6s %6s %6s %6s\n"
printf "$fmt" round setting load bb50 bb99 img50 img99 p50 p99 p99/bb50 p99/bb99 p99/img50 p99/img99 sbb99 tailbb taildec tailnet tailcli | tee "$work/table"
learn=100
for r in $(seq "$rounds"); do
  la=$(cut -d' ' -f1 /proc/loadavg)
  "$work/loadgen" --streams "${streams#,}$refs" --ref-model "$model" --data "$spec" --images 256 --learn "$learn" \
    --requests "$requests" >"$work/lg.txt"
  learn=0
  i=0
  for cfg in $configs; do
    i=$((i + 1))
    awk -v s="s$i" -v ref="${refof[s$i]}" -v r="$r" -v cfg="$cfg" -v la="$la" -v fmt="$fmt" '
      # stream NAME: N turns (E errors), p50 X ms, p99 Y ms[, backbone p50 A ms, p99 B ms]
      $1 == "stream" && $2 == ref":" { img50 = $8; img99 = $11; bb50 = $15; bb99 = $18 }
      $1 == "stream" && $2 == s":" { p50 = $8; p99 = $11 }
      # NAME phases ms (...): PHASE MEDIAN; P99; TAILMEAN ...
      $1 == s && $2 == "phases" { for (k = 1; k <= NF; k++) { if ($k == "backbone") { sb = $(k+2); tb = $(k+3) }
                                  if ($k == "decode") td = $(k+3); if ($k == "net") tn = $(k+3); if ($k == "client") tc = $(k+3) } }
      END { gsub(";", "", sb); gsub(";", "", tb); gsub(";", "", td); gsub(";", "", tn); gsub(";", "", tc)
            printf fmt, r, cfg, la, bb50, bb99, img50, img99, p50, p99, sprintf("%.2f", p99/bb50), sprintf("%.2f", p99/bb99),
              sprintf("%.2f", p99/img50), sprintf("%.2f", p99/img99), sb, tb, td, tn, tc }' "$work/lg.txt" | tee -a "$work/table"
  done
done
for p in $pid; do kill -TERM "$p"; done
for p in $pid; do wait "$p" || true; done
pid=
echo "medians over the rounds:"
for cfg in $configs; do
  awk -v cfg="$cfg" -v fmt="$fmt" '
    NR > 1 && $2 == cfg { n++; for (c = 3; c <= 18; c++) v[c, n] = $c }
    END {
      line = sprintf("%-5s %-28s", "med", cfg)
      for (c = 3; c <= 18; c++) {
        for (i = 1; i <= n; i++) a[i] = v[c, i]
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        line = line sprintf(" %6.2f", m)
      }
      print line
    }' "$work/table"
done
echo "  [$(date -u +%H:%M:%S) load average: $(cut -d' ' -f1-3 /proc/loadavg)]"
