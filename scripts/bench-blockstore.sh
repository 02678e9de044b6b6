#!/usr/bin/env bash
# Block store benchmarks as ratios to same-moment references.
#
# The disk of a shared VM changes speed from one minute to the next (raw
# fsync'd write bandwidth has been seen to vary 3x within one run), so a
# figure is only meaningful next to a reference measured right before it.
# This runs ROUNDS rounds; each round measures the raw disk (and SHA-256)
# and then the store, and the script prints every round's ratios and
# their medians. Usage: scripts/bench-blockstore.sh  (ROUNDS=5 BENCHTIME=2s)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
BENCHTIME=${BENCHTIME:-2s}
out=$(mktemp -d)
for r in $(seq 1 "$ROUNDS"); do
	go test -run '^$' -bench 'RawDisk|SHA256|Store/(Put|GetCold|ParallelGetCold)/' -benchtime "$BENCHTIME" -count 1 ./blockstore/localstore >"$out/round$r.txt"
	go test -run '^$' -bench 'ReplicatedPut/(Warmup|RawWrite|PutR3W2)' -benchtime "$BENCHTIME" -count 1 ./blockstore/blockit >>"$out/round$r.txt"
	echo "round $r done" >&2
done
# name -> MB/s per round; then the ratios.
awk -v rounds="$ROUNDS" '
function median(arr, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
	return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
FNR == 1 { round++ }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 2; i < NF; i++) if ($(i + 1) == "MB/s") mb[round, name] = $i
}
END {
	n = split("Put/1MiB:WriteFsyncEach/1MiB Put/1MiB:WriteStream/1MiB Put/4MiB:WriteFsyncEach/4MiB Put/4MiB:WriteStream/4MiB GetCold/1MiB:ReadCold/1MiB ParallelGetCold/1MiB:ReadCold/1MiB GetCold/4MiB:ReadCold/4MiB ParallelGetCold/4MiB:ReadCold/4MiB", pairs, " ")
	printf "%-52s %s\n", "ratio (per round)", "median"
	for (p = 1; p <= n; p++) {
		split(pairs[p], ab, ":")
		line = ""
		for (r = 1; r <= rounds; r++) { v[r] = mb[r, "BenchmarkStore/" ab[1]] / mb[r, "BenchmarkRawDisk/" ab[2]]; line = line sprintf(" %.2f", v[r]) }
		printf "%-52s %.2f  (%s )\n", "Store/" ab[1] " / Raw " ab[2], median(v, rounds), line
	}
	m = split("1MiB 4MiB", sizes, " ")
	for (s = 1; s <= m; s++) for (k = 1; k <= 2; k++) {
		ref = (k == 1) ? "RawWriteFsyncEach/" : "RawWriteStream/"
		line = ""
		for (r = 1; r <= rounds; r++) { v[r] = mb[r, "BenchmarkReplicatedPut/PutR3W2/" sizes[s]] / (mb[r, "BenchmarkReplicatedPut/" ref sizes[s]] / 3); line = line sprintf(" %.2f", v[r]) }
		printf "%-52s %.2f  (%s )\n", "ReplicatedPut R3W2/" sizes[s] " / (" ref sizes[s] " / 3)", median(v, rounds), line
	}
	print ""
	print "MB/s, median of the rounds"
	for (key in mb) { split(key, kk, SUBSEP); names[kk[2]] = 1 }
	for (name in names) {
		for (r = 1; r <= rounds; r++) v[r] = mb[r, name]
		printf "%-52s %.0f\n", name, median(v, rounds)
	}
}' "$out"/round*.txt
echo "raw outputs: $out" >&2
