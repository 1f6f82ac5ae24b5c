// swift-tools-version: 6.0
import PackageDescription

/// The package's own folder, for linker inputs kept in the repository.
let packageRoot = String(#filePath.dropLast("/Package.swift".count))

/// Flags of the release link of the `blockscope` executable (ADR 0012, ADR 0013).
let releaseLinkFlags: [String] = [
    "-static-stdlib", "-use-ld=lld",
    "-L", "\(packageRoot)/build-support/static-cxx",
    "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
    "-Xlinker", "--symbol-ordering-file=\(packageRoot)/build-support/link-order.txt",
    "-Xlinker", "--no-warn-symbol-ordering",
    "-Xlinker", "--start-group", "-Xlinker", "-l_FoundationICU", "-Xlinker", "-l_FoundationCShims",
    "-Xlinker", "-l_FoundationCollections", "-Xlinker", "-lCoreFoundation", "-Xlinker", "-lFoundationEssentials",
    "-Xlinker", "-lFoundationInternationalization", "-Xlinker", "-lFoundation", "-Xlinker", "-lstdc++",
    "-Xlinker", "--end-group",
]

let package = Package(
    name: "blockscope",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "blockscope", targets: ["blockscope"]),
        .library(name: "BlockInspect", targets: ["BlockInspect"]),
        .library(name: "BlockCore", targets: ["BlockCore"]),
        .library(name: "BlockEngine", targets: ["BlockEngine"]),
        .library(name: "BlockScopeUI", targets: ["BlockScopeUI"]),
        .library(name: "BlockServe", targets: ["BlockServe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    ],
    targets: [
        // C bindings: one system-library module per C library, found with pkg-config.
        .systemLibrary(name: "CURing", pkgConfig: "liburing",
                       providers: [.apt(["liburing-dev"])]),
        .systemLibrary(name: "CNCurses", pkgConfig: "ncursesw",
                       providers: [.apt(["libncurses-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),

        // The format-neutral inspection model: tables of entries, sections, cells, legends and the
        // `ImageInspector` protocol every format fills and the UI only renders. Below the formats.
        .target(name: "BlockInspect"),
        // Block layer: errors, disk protocols, io_uring, formats. Knows nothing of workloads or terminals.
        .target(
            name: "BlockCore",
            dependencies: [
                "BlockInspect", "CURing", "CZlib", "CZstd",
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Workloads over BlockCore: jobs, runner, stats, events, trace, bench.
        .target(
            name: "BlockEngine",
            dependencies: [
                "BlockCore",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // The NBD server: protocol parsing (pure functions) and one queue per client connection.
        // Knows BlockCore only; no workloads, no screen.
        .target(
            name: "BlockServe",
            dependencies: ["BlockCore"]
        ),
        // The terminal UI: draws what BlockEngine and BlockCore expose.
        .target(
            name: "BlockScopeUI",
            dependencies: ["BlockEngine", "BlockCore", "BlockInspect", "CNCurses"]
        ),
        // The executable: one file per subcommand.
        .executableTarget(
            name: "blockscope",
            dependencies: [
                "BlockCore", "BlockEngine", "BlockScopeUI", "BlockServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // Release builds link the Swift runtime and Foundation statically: the dynamic
            // libFoundation/ICU set costs 11 MB of resident memory and tens of milliseconds of
            // relocation at every start (docs/adr/0012-static-swift-runtime.md). They link with
            // lld, packed relative relocations, libstdc++ linked statically and the code that
            // start-up, check, info, map and the TUI's first frame run laid out together
            // (build-support/link-order.txt, made by scripts/perf/link-order.sh); the
            // resident-memory figures are in docs/adr/0013-release-link-layout.md.
            linkerSettings: [.unsafeFlags(releaseLinkFlags, .when(configuration: .release))]
        ),

        // Helpers shared by the test targets (running qemu-img, the built binary, temp dirs).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "BlockCoreTests", dependencies: ["BlockCore", "BlockInspect", "TestSupport"]),
        .testTarget(name: "BlockEngineTests", dependencies: ["BlockEngine", "BlockCore", "TestSupport"]),
        .testTarget(name: "BlockScopeUITests", dependencies: ["BlockScopeUI", "BlockEngine", "BlockCore", "BlockInspect", "BlockServe", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["BlockCore", "TestSupport"]),
        .testTarget(name: "BlockServeTests", dependencies: ["BlockServe", "BlockCore", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
