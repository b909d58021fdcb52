// swift-tools-version:5.10
import PackageDescription

let package = Package(
    name: "duo",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "duo", targets: ["duo"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Cluster", targets: ["Cluster"]),
        .library(name: "Formats", targets: ["Formats"]),
        .library(name: "Diffusion", targets: ["Diffusion"]),
        .library(name: "Concepts", targets: ["Concepts"]),
        .library(name: "Unlearning", targets: ["Unlearning"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .library(name: "World", targets: ["World"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        // System libraries: OpenBLAS (cblas), libpng and, for SHA-256 on Linux, OpenSSL's
        // libcrypto (macOS has CommonCrypto), installed by `make deps`.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CLibCrypto", path: "Sources/CLibCrypto"),
        // Hot elementwise, normalization and attention kernels (see BENCHMARKS.md for why C),
        // built for several x86-64 levels and chosen at load time (Sources/CKernels/dispatch.h):
        // no unsafe flags, so the package can be used as a dependency.
        .target(name: "CKernels"),

        // The core: tensors, ops with their gradients, autodiff, RNG, optimizers.
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels"]),
        // The ranks `mpirun` starts (Open MPI, opened at run time: duo builds and runs without it).
        .target(name: "Cluster"),
        // File formats: safetensors, PNG, JSON, TOML, image grids, digests. Independent of Tensor.
        .target(
            name: "Formats",
            dependencies: [
                "CPNG", "CKernels",
                .target(name: "CLibCrypto", condition: .when(platforms: [.linux])),
            ]),

        // Models in the diffusers layout: tokenizer, text encoder, UNet, VAE, schedulers, LoRA.
        .target(name: "Diffusion", dependencies: ["Tensor", "Formats"]),
        // Concept files, prompt templates and prompt sets; the `PromptFiller` a world implements.
        .target(name: "Concepts", dependencies: ["Formats", "Diffusion"]),

        // The method on the models: SDEdit pairs, detectors, the DUO trainer and ESD.
        .target(
            name: "Unlearning",
            dependencies: ["Tensor", "Formats", "Diffusion", "Concepts", "Cluster"]),

        // Measuring unlearning: attacks, the detector protocol at scale, metrics, reports.
        .target(
            name: "Evaluation",
            dependencies: ["Tensor", "Formats", "Diffusion", "Concepts", "Unlearning", "Cluster"]),

        // The embedded default's procedural world: scenes, captions, stand-in concepts, and
        // the method's plug-ins for it (prompt filling, detector heads, preservation metrics).
        // It depends on the method; the method never on it.
        .target(
            name: "World",
            dependencies: [
                "Tensor", "Formats", "Diffusion", "Concepts", "Unlearning", "Evaluation",
            ],
            resources: [.copy("Resources")]),

        // `duo --version`: the commit the executable is built from.
        .plugin(name: "BuildInfo", capability: .buildTool()),
        // The CLI: one file per subcommand.
        .executableTarget(
            name: "duo",
            dependencies: [
                "Tensor", "Formats", "Diffusion", "Concepts", "Unlearning", "Evaluation", "World",
                "Cluster", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            plugins: ["BuildInfo"]),
        // `make bench`: throughput of the core against OpenBLAS's own sgemm.
        .executableTarget(
            name: "duo-bench",
            dependencies: [
                "Tensor", "Formats", "Diffusion", "Concepts", "Unlearning", "Evaluation", "World",
            ]),

        .target(name: "TestSupport", dependencies: ["Tensor"], path: "Tests/TestSupport"),
        .testTarget(
            name: "TensorTests", dependencies: ["Tensor", "TestSupport", "Formats"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "FormatsTests", dependencies: ["Formats"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "ConceptsTests", dependencies: ["Concepts", "Formats"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "DiffusionTests", dependencies: ["Diffusion", "Formats", "TestSupport"],
            resources: [.copy("Fixtures")]),
        // The method alone, as a real model's user runs it: this target must not depend on World.
        .testTarget(
            name: "MethodTests",
            dependencies: ["Concepts", "Unlearning", "Evaluation", "Diffusion", "Formats"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "WorldTests",
            dependencies: [
                "World", "Concepts", "Unlearning", "Evaluation", "Diffusion", "Formats",
                "TestSupport",
            ]),
        .testTarget(
            name: "UnlearningTests",
            dependencies: [
                "Unlearning", "Concepts", "World", "Diffusion", "Formats", "TestSupport",
            ],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "EvaluationTests",
            dependencies: [
                "Evaluation", "Concepts", "Formats", "Diffusion", "Tensor", "World", "TestSupport",
            ],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "duoTests",
            dependencies: ["duo", "Formats", "Concepts", "World", "Unlearning", "TestSupport"]),
    ]
)
