#!/usr/bin/env bash
# Runs each libFuzzer harness built by `make fuzz` for a bounded time and prints, per
# harness, the inputs executed and whether it crashed. Exits non-zero if any did.
#
#   Fuzz/run.sh SECONDS [HARNESS ...]     (default: every harness)
#
# Each harness grows its own corpus in the scratch folder, starting from the committed
# seeds in Fuzz/Corpus/<harness>; crash inputs land in .build/artifacts/<harness>/.
set -uo pipefail
cd "$(dirname "$0")"

seconds=${1:?usage: run.sh SECONDS [HARNESS ...]}
shift
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(safetensors json concept png tokenizer promptset)

# The longest input each harness is given: room for the seeds and some growth, small
# enough that time goes into variety rather than into huge inputs.
max_len() {
    case "$1" in
        tokenizer) echo 16384 ;;   # vocab.json, merges.txt, a prompt and a config
        concept) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

bin=.build/release

# The harnesses write each input to a file under TMPDIR; in memory (tmpfs) that is far
# cheaper than on disk, above all the fsync of the prompt-set writer.
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
TMPDIR=$(mktemp -d "$base/duo-fuzz.XXXXXX") || exit 1
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

results=()
failed=0
for name in "${harnesses[@]}"; do
    corpus=.build/corpus/$name
    artifacts=.build/artifacts/$name
    log=.build/logs/$name.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    echo "fuzz-$name: ${seconds}s, -max_len=$(max_len "$name") (log: Fuzz/$log)"
    # -timeout: an input taking this long counts as a hang; -rss_limit_mb/-malloc_limit_mb:
    # what one small input may make a reader allocate before it counts as a crash.
    # Leak checks are off (for each input and at exit): Foundation's
    # FileManager.contents(atPath:) leaks a buffer on every empty file, which would end each
    # run that reads one. ASan's memory errors still count as crashes. Swift's own backtracer
    # is off so libFuzzer handles a trap and its stack names the check (e.g. "Swift runtime
    # failure: arithmetic overflow"); with both, ASan flags the backtracer's reads instead.
    ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no "$bin/fuzz-$name" "$corpus" "Corpus/$name" \
        -max_total_time="$seconds" -max_len="$(max_len "$name")" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -detect_leaks=0 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
    status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    found=$(grep -c -E '^artifact_prefix=.*Test unit written to' "$log")
    if [ "$status" -ne 0 ] || [ "$found" -gt 0 ]; then
        failed=1
        unit=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
        summary=$(grep -m 1 -o -E 'Swift runtime failure: .*|Fatal error: .*|SUMMARY: .*' "$log")
        results+=("$(printf '%-12s runs %-10s exec/s %-7s CRASHED (exit %s): %s %s' \
            "$name" "${runs:-?}" "${speed:-?}" "$status" "${unit:-no unit written}" "$summary")")
    else
        results+=("$(printf '%-12s runs %-10s exec/s %-7s no crash' "$name" "$runs" "$speed")")
    fi
done

echo
echo "fuzzing summary (${seconds}s per harness):"
printf '  %s\n' "${results[@]}"
exit "$failed"
