# Sourced by the heads benchmarks (bench-ranpac.sh, bench-stathead.sh):
# builds the ./heads test binary of the working tree as $dir/working-tree.test
# and, with BASE=<git revision> set, that revision's as $dir/$BASE.test (from
# git archive, in $dir/base), and sets $builds to the names to alternate.
# Needs $dir (a temporary directory) and the repository root as the current
# directory.
builds="working-tree"
if [ -n "${BASE:-}" ]; then
	mkdir "$dir/base"
	git archive "$BASE" | tar -x -C "$dir/base"
	(cd "$dir/base" && go test -c -o "$dir/$BASE.test" ./heads)
	builds="$BASE working-tree"
fi
go test -c -o "$dir/working-tree.test" ./heads
