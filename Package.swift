// swift-tools-version:5.10
import PackageDescription

// The hot C kernels are built optimized even in debug builds: tests run the same code
// paths as the tool, at a speed that keeps the suite short.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-march=native", "-ffp-contract=fast"])]

let package = Package(
    name: "duo",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "duo", targets: ["duo"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Formats", targets: ["Formats"]),
        .library(name: "Diffusion", targets: ["Diffusion"]),
        .library(name: "World", targets: ["World"]),
        .library(name: "Unlearning", targets: ["Unlearning"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // SHA-256 of model weights and pair manifests (BoringSSL's, with SHA extensions).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // System libraries: OpenBLAS (cblas) and libpng, installed by `make deps`.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        // Hot elementwise, normalization and attention kernels (see BENCHMARKS.md for why C).
        .target(name: "CKernels", cSettings: kernelFlags),

        // The core: tensors, ops with their gradients, autodiff, RNG, optimizers.
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels"]),
        // File formats: safetensors, PNG, image grids, digests. Independent of Tensor.
        .target(
            name: "Formats",
            dependencies: ["CPNG", "CKernels", .product(name: "Crypto", package: "swift-crypto")]),

        // Models in the diffusers layout: tokenizer, text encoder, UNet, VAE, schedulers, LoRA.
        .target(name: "Diffusion", dependencies: ["Tensor", "Formats"]),
        // The embedded default's procedural world: scenes, captions, stand-in concepts.
        .target(
            name: "World", dependencies: ["Tensor", "Formats", "Diffusion"],
            resources: [.copy("Resources")]),

        // The method on the models: SDEdit pairs, detectors, the DUO trainer and ESD.
        .target(name: "Unlearning", dependencies: ["Tensor", "Formats", "Diffusion", "World"]),

        // Measuring unlearning: attacks, the detector protocol at scale, metrics, reports.
        .target(name: "Evaluation", dependencies: ["Tensor", "Formats", "Diffusion", "World", "Unlearning"]),

        // The CLI: one file per subcommand.
        .executableTarget(
            name: "duo",
            dependencies: [
                "Tensor", "Formats", "Diffusion", "World", "Unlearning", "Evaluation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // `make bench`: throughput of the core against OpenBLAS's own sgemm.
        .executableTarget(name: "duo-bench", dependencies: ["Tensor", "Diffusion", "Unlearning", "Evaluation", "World"]),

        .target(name: "TestSupport", dependencies: ["Tensor"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "TestSupport"]),
        .testTarget(
            name: "FormatsTests", dependencies: ["Formats"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "DiffusionTests", dependencies: ["Diffusion", "Formats", "TestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "WorldTests", dependencies: ["World", "Diffusion", "Formats", "TestSupport"]),
        .testTarget(
            name: "UnlearningTests",
            dependencies: ["Unlearning", "World", "Diffusion", "Formats", "TestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "EvaluationTests", dependencies: ["Evaluation", "Formats", "Diffusion", "Tensor", "World"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "duoTests", dependencies: ["duo", "Formats", "World", "Unlearning", "TestSupport"]),
    ]
)
