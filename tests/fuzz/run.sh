#!/bin/sh
# Runs every libFuzzer target of a `make fuzz` build for a share of SECONDS
# in all, from its seed corpus (tests/fuzz/corpus/<target>/) with its
# dictionary (tests/fuzz/<target>.dict, else tests/fuzz/<module>.dict).
# New inputs go to a temp dir, never into the source tree. Exits non-zero
# if any target crashes, leaks or times out; the reproducer is kept and
# its path printed.
#
#   sh tests/fuzz/run.sh BUILD_DIR SECONDS
set -u
build=${1:?usage: run.sh BUILD_DIR SECONDS}
total=${2:?usage: run.sh BUILD_DIR SECONDS}
here=$(cd "$(dirname "$0")" && pwd)
# The fuzz build lets UBSan recover; a report must fail the run, not
# scroll by in a log nobody reads.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export UBSAN_OPTIONS
bindir="$build/tests/fuzz"

targets=""
for t in "$bindir"/fuzz-*; do
	[ -x "$t" ] && [ -f "$t" ] && targets="$targets $t"
done
if [ -z "$targets" ]; then
	echo "fuzz: no targets in $bindir (run make fuzz)" >&2
	exit 1
fi
n=$(echo $targets | wc -w)
share=$((total / n))
[ "$share" -lt 1 ] && share=1

work=$(mktemp -d /tmp/loft-fuzz.XXXXXX)
failed=0
for t in $targets; do
	name=$(basename "$t")
	mod=$(echo "$name" | sed 's/^fuzz-\([a-z0-9]*\).*/\1/')
	mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
	seeds="$here/corpus/$name"
	dict=""
	if [ -f "$here/$name.dict" ]; then
		dict="-dict=$here/$name.dict"
	elif [ -f "$here/$mod.dict" ]; then
		dict="-dict=$here/$mod.dict"
	fi
	# the message corpus seeds the message-shaped targets too
	extra=""
	case "$name" in
	fuzz-mail-analyze|fuzz-mail-section) extra="$here/../corpus/broken" ;;
	esac
	[ -d "$seeds" ] || seeds=""
	"$t" -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -print_final_stats=1 $dict \
		-artifact_prefix="$work/$name/artifacts/" \
		"$work/$name/corpus" $seeds $extra \
		>"$work/$name/log" 2>&1
	rc=$?
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$name/log" | grep -o '[0-9]*$')
	if [ $rc -ne 0 ]; then
		failed=1
		echo "fuzz: $name FAILED (exit $rc) after ${runs:-?} runs; log and reproducer in $work/$name"
		grep -m 5 -E 'ERROR|SUMMARY|artifact' "$work/$name/log"
	else
		echo "fuzz: $name ok, ${runs:-?} runs in ${share}s"
	fi
done
if [ $failed -eq 0 ]; then
	rm -rf "$work"
	echo "fuzz: all $n targets ok"
fi
exit $failed
