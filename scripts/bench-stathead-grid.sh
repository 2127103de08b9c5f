#!/bin/sh
# FeCAM and streaming LDA fitting, Go against numpy, over a grid of sizes
# (scripts/bench-stathead.sh per point): one JSON line per point.
# Usage: [CL_BLAS=openblas] [METHODS="fecam lda"] [NS="10000 60000"] [DS="768 1280"] [CS="10 100"] \
#        scripts/bench-stathead-grid.sh
# N = 60000, D = 1280 is docs/RESULTS.md's Fashion-MNIST run with MobileNetV2 features.
set -eu
METHODS=${METHODS:-"fecam lda"}
NS=${NS:-"10000 60000"}
DS=${DS:-"768 1280"}
CS=${CS:-"10 100"}
for m in $METHODS; do
	for n in $NS; do
		for d in $DS; do
			for c in $CS; do
				scripts/bench-stathead.sh "$m" "$n" "$d" "$c" 1 2>/dev/null
			done
		done
	done
done
