#!/bin/bash
# make docs-check: runs every duo command the README and docs show in a code block, as
# written, in document order, one scratch folder per document (so a document's commands may
# use what its earlier commands made). `duo` and `.build/release/duo` are this checkout's
# release build. Commands that name $M or $A (your own Stable Diffusion folder and adapter)
# run only when M and A are set in the environment; they are listed as skipped otherwise.
# The test suite parses and validates the same commands on every run
# (Tests/duoTests/DocumentedCommandsTests.swift); this runs them for real, which takes long.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
binary="$root/.build/release/duo"
[ -x "$binary" ] || { echo "docs-check: build first (make build)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/duo-docs-check.XXXXXX")
mkdir -p "$work/bin"
ln -s "$binary" "$work/bin/duo"
export PATH="$work/bin:$PATH"
failed=0 ran=0 skipped=0

# The command lines of a Markdown file's fenced blocks (continuations joined), one per line.
commands() {
    awk '
        /^[[:space:]]*```/ { inblock = !inblock; next }
        !inblock { next }
        {
            line = $0
            sub(/^[[:space:]]+/, "", line)
            if (pending != "") { pending = pending " " line }
            else if (line ~ /^(duo |\.build\/release\/duo )/) { pending = line }
            else { next }
            if (pending ~ /\\$/) { sub(/\\$/, "", pending); next }
            print pending
            pending = ""
        }' "$1"
}

for doc in "$root/README.md" "$root"/docs/*.md "$root"/docs/experiments/*.md \
    "$root/Sources/World/Resources/concepts/README.md"; do
    [ -f "$doc" ] || continue
    name=${doc#"$root/"}
    folder="$work/$(echo "$name" | tr '/' '_')"
    mkdir -p "$folder/.build/release"
    ln -s "$binary" "$folder/.build/release/duo"
    # As from the repository's root: `--concept nudity` finds concepts/ (a copy, which an
    # attack may write into) and its detector command detectors/.
    cp -R "$root/concepts" "$folder/concepts"
    ln -s "$root/detectors" "$folder/detectors"
    while IFS= read -r command; do
        if [[ "$command" == *'$M'* || "$command" == *'$A'* ]] && [ -z "${M:-}${A:-}" ]; then
            echo "docs-check: skipped (set M and A): $name: $command"
            skipped=$((skipped + 1))
            continue
        fi
        echo "docs-check: $name: $command"
        ran=$((ran + 1))
        if ! (cd "$folder" && bash -c "$command" </dev/null); then
            echo "docs-check: FAILED: $name: $command"
            failed=$((failed + 1))
        fi
    done < <(commands "$doc")
done
echo "docs-check: $ran run, $failed failed, $skipped skipped (scratch: $work)"
[ "$failed" -eq 0 ] && rm -rf "$work"
[ "$failed" -eq 0 ]
