// swift-tools-version:5.4
import PackageDescription

// libFuzzer harnesses for duo's readers of untrusted files. A package of its own so that the
// main package's `swift build` and `make test` never see them; `make fuzz` builds it with
// `-sanitize=fuzzer,address -parse-as-library` (libFuzzer supplies `main`).
//
// Tools version 5.4 on purpose: from 5.5 on, SwiftPM links an executable's `main` to a
// renamed `<module>_main` symbol, which a harness (whose `main` is libFuzzer's) never
// defines. 5.4 wants each executable's code in main.swift; -parse-as-library keeps that
// file from defining a `main` of its own.
let package = Package(
    name: "duo-fuzz",
    dependencies: [.package(name: "duo", path: "..")],
    targets: [
        // Writes a fuzz input where a path-taking API can read it.
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        .executableTarget(
            name: "fuzz-safetensors",
            dependencies: ["FuzzSupport", .product(name: "Formats", package: "duo")]),
        .executableTarget(
            name: "fuzz-json", dependencies: [.product(name: "Formats", package: "duo")]),
        .executableTarget(
            name: "fuzz-concept",
            dependencies: [
                .product(name: "Formats", package: "duo"), .product(name: "Concepts", package: "duo"),
                .product(name: "World", package: "duo"),
            ]),
        .executableTarget(
            name: "fuzz-png",
            dependencies: ["FuzzSupport", .product(name: "Formats", package: "duo")]),
        .executableTarget(
            name: "fuzz-tokenizer",
            dependencies: ["FuzzSupport", .product(name: "Diffusion", package: "duo")]),
        .executableTarget(
            name: "fuzz-promptset",
            dependencies: ["FuzzSupport", .product(name: "Concepts", package: "duo")]),
    ]
)
