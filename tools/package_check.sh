#!/bin/bash
# Builds and runs a scratch package outside the repository that depends on duo's library
# products through a git URL and a version, as another project would: SwiftPM refuses a
# versioned dependency whose manifest has unsafe compiler flags (-march=native among them),
# so this fails if Package.swift grows one again.
# The dependency is this checkout's tracked files as they are now (`git stash create`
# snapshots uncommitted changes without touching the work tree), so no commit is needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
revision=$(git -C "$root" stash create)
revision=${revision:-$(git -C "$root" rev-parse HEAD)}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/duo-package-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# SwiftPM names a dependency after its URL's last component: serve the snapshot as .../duo.
git init --quiet --bare "$scratch/remote/duo"
git -C "$root" push --quiet "$scratch/remote/duo" "$revision:refs/heads/check"
git -C "$scratch/remote/duo" tag 0.0.1 "$revision"  # unsafe flags are refused by version only
mkdir -p "$scratch/Sources/consumer"
cp "$root/tools/package-check/main.swift" "$scratch/Sources/consumer/main.swift"
cat > "$scratch/Package.swift" <<SWIFT
// swift-tools-version:5.10
import PackageDescription

let package = Package(
    name: "duo-consumer",
    platforms: [.macOS(.v13)],
    dependencies: [.package(url: "file://$scratch/remote/duo", exact: "0.0.1")],
    targets: [
        .executableTarget(
            name: "consumer",
            dependencies: [
                .product(name: "Concepts", package: "duo"),
                .product(name: "Unlearning", package: "duo"),
                .product(name: "Evaluation", package: "duo"),
            ])
    ]
)
SWIFT
echo "package-check: a package in $scratch depends on duo at ${revision:0:12}"
swift build --package-path "$scratch" --product consumer
"$scratch/.build/debug/consumer"
