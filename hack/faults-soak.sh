#!/usr/bin/env bash
# Runs the client library's fault suite (test/faults) SOAK_COUNT times in a
# row under parallel CPU load and stops at the first failure, printing that
# run's log: a flow that ran out of time prints what each party was waiting
# for (test/faults/watch_test.go).
#
# The load, for the whole soak:
#   - SOAK_LOAD_PKGS (default ./pkg/hubflow): the tests of these packages, run
#     again and again next to the suite, as `go test ./pkg/... ./test/...`
#     runs them (the suite once hung there); their own results are ignored;
#   - SOAK_BURNERS (default: the number of CPUs) busy loops, so the suite
#     and the load share the CPUs with as many spinning processes.
# SOAK_CPUS (e.g. 0) pins the suite, the load and the busy loops to those
# CPUs (taskset): on a shared machine, a starved suite without taking every
# core from others.
# SOAK_RUN (default ^TestSemanticsUnderFaults$) selects the tests of the
# suite, SOAK_ARGS adds go test flags (e.g. -test.short). Logs go to
# SOAK_DIR (default a new temporary directory).
set -euo pipefail

count=${SOAK_COUNT:-20}
run=${SOAK_RUN:-'^TestSemanticsUnderFaults$'}
load_pkgs=${SOAK_LOAD_PKGS:-./pkg/hubflow}
burners=${SOAK_BURNERS:-$(nproc)}
dir=${SOAK_DIR:-$(mktemp -d -t faults-soak.XXXXXX)}
go=${GO:-go}
pin=()
if [[ -n ${SOAK_CPUS:-} ]]; then
	pin=(taskset -c "$SOAK_CPUS")
fi
mkdir -p "$dir/bin"

echo "faults-soak: compiling the suite and the load"
"$go" test -c -o "$dir/bin/faults.test" ./test/faults
load_bins=()
for pkg in $load_pkgs; do
	bin="$dir/bin/load-$(basename "$pkg").test"
	if [[ $pkg == ./pkg/* ]]; then
		# The client library is its own module under pkg/.
		"$go" -C pkg test -c -o "$bin" "./${pkg#./pkg/}"
	else
		"$go" test -c -o "$bin" "$pkg"
	fi
	load_bins+=("$pkg=$bin")
done

pids=()
stop_load() {
	for pid in "${pids[@]}"; do
		kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}
trap stop_load EXIT

# Each load process gets its own process group (set -m) so that stopping it
# also stops the test binary it runs.
set -m
for entry in "${load_bins[@]}"; do
	pkg=${entry%%=*} bin=${entry#*=}
	(
		cd "$pkg"
		while :; do "${pin[@]}" "$bin" -test.count=1 -test.timeout=10m >>"$dir/load-$(basename "$pkg").log" 2>&1 || true; done
	) &
	pids+=($!)
done
for _ in $(seq "$burners"); do
	"${pin[@]}" bash -c 'while :; do :; done' &
	pids+=($!)
done
set +m
echo "faults-soak: load running: tests of ${load_pkgs} in a loop, ${burners} busy loop(s)${SOAK_CPUS:+, all on CPU(s) $SOAK_CPUS}; logs in $dir"

for i in $(seq "$count"); do
	log="$dir/run-$i.log"
	start=$(date +%s)
	if (cd test/faults && "${pin[@]}" "$dir/bin/faults.test" -test.run "$run" -test.v -test.count=1 -test.timeout=30m ${SOAK_ARGS:-}) >"$log" 2>&1; then
		echo "faults-soak: run $i/$count passed in $(($(date +%s) - start))s"
	else
		echo "faults-soak: run $i/$count FAILED after $(($(date +%s) - start))s; its log ($log):"
		cat "$log"
		exit 1
	fi
done
echo "faults-soak: $count/$count runs passed under load"
