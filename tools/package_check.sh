#!/bin/bash
# Builds and runs a scratch package outside the repository that depends on duo's library
# products through a git URL, as another project would: SwiftPM refuses a dependency whose
# manifest has unsafe compiler flags, so this fails if Package.swift grows one again.
# The dependency is this checkout's tracked files as they are now (`git stash create`
# snapshots uncommitted changes without touching the work tree), so no commit is needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
revision=$(git -C "$root" stash create)
revision=${revision:-$(git -C "$root" rev-parse HEAD)}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/duo-package-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/Sources/consumer"
cp "$root/tools/package-check/main.swift" "$scratch/Sources/consumer/main.swift"
cat > "$scratch/Package.swift" <<SWIFT
// swift-tools-version:5.10
import PackageDescription

let package = Package(
    name: "duo-consumer",
    platforms: [.macOS(.v13)],
    dependencies: [.package(url: "file://$root", revision: "$revision")],
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
