#!/bin/sh
# Prediction speed (docs/PERFORMANCE.md "Prediction"): heads' BenchmarkPredict (Scores + arg-max against TopK, per
# core) for this checkout and, optionally, for an older revision, the two test binaries run alternately so that
# both see the same machine.
#
# Usage: scripts/bench-predict.sh [OLD_REV [ROUNDS [BENCHTIME]]]
#   OLD_REV: a git revision to compare with (e.g. 3829931, the float32 AVX2 kernel); none: this checkout only.
#   Defaults: 2 rounds, -benchtime 300ms. Run from the repository root.
set -eu
OLD=${1:-}; ROUNDS=${2:-2}; BT=${3:-300ms}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; [ -z "$OLD" ] || git worktree remove --force "$tmp/old" 2>/dev/null || true' EXIT
go test -c -o "$tmp/new.test" ./heads
if [ -n "$OLD" ]; then
	git worktree add --detach "$tmp/old" "$OLD" >/dev/null 2>&1
	(cd "$tmp/old" && go test -c -o "$tmp/old.test" ./heads)
fi
i=0
while [ "$i" -lt "$ROUNDS" ]; do
	if [ -n "$OLD" ]; then
		echo "# round $i: $OLD"
		(cd heads && GOMAXPROCS=1 "$tmp/old.test" -test.run '^$' -test.bench '^BenchmarkPredict$' -test.benchtime "$BT" | grep -E '^Benchmark')
	fi
	echo "# round $i: $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes)"
	(cd heads && GOMAXPROCS=1 "$tmp/new.test" -test.run '^$' -test.bench '^BenchmarkPredict$' -test.benchtime "$BT" | grep -E '^Benchmark')
	i=$((i + 1))
done
