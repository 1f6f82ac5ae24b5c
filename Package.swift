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
        .library(name: "BlockIO", targets: ["BlockIO"]),
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

        // The block layer, one target per concern (docs/ARCHITECTURE.md, docs/adr/0017-format-modules.md).
        // I/O: BlockError, SystemFile, io_uring, the queue core, the disk protocols, image locks,
        // events, byte fields, checksums. Knows no format.
        .target(
            name: "BlockIO",
            dependencies: ["CURing", .product(name: "DequeModule", package: "swift-collections")]
        ),
        // The format-neutral structure model the formats fill and the UI renders.
        .target(name: "BlockInspect", dependencies: ["BlockIO"]),
        // The block-map engine the BAT formats (VHDX, VHD) share: BlockMappedDisk, MappedAsync.
        .target(
            name: "BlockMap",
            dependencies: ["BlockIO", .product(name: "DequeModule", package: "swift-collections")]
        ),
        // One target per format: header, metadata, sync and io_uring paths, check, create, structure.
        .target(
            name: "Raw",
            dependencies: ["BlockIO", "BlockInspect", .product(name: "DequeModule", package: "swift-collections")]
        ),
        .target(
            name: "Qcow2",
            dependencies: ["BlockIO", "BlockInspect", "CURing", "CZlib", "CZstd",
                           .product(name: "DequeModule", package: "swift-collections")]
        ),
        .target(name: "Vhdx", dependencies: ["BlockIO", "BlockInspect", "BlockMap"]),
        .target(name: "Vhd", dependencies: ["BlockIO", "BlockInspect", "BlockMap"]),
        .target(name: "Vmdk", dependencies: ["BlockIO", "BlockInspect", "BlockMap", "CZlib"]),
        // The format registry: probe and open (`openDisk`), one line per format. Re-exports the
        // modules below it, so `import BlockCore` is the whole block layer for a library user.
        .target(
            name: "BlockCore",
            dependencies: ["BlockIO", "BlockInspect", "BlockMap", "Raw", "Qcow2", "Vhdx", "Vhd", "Vmdk"]
        ),
        // Workloads over any disk: jobs, runner, stats, events, trace, bench. Knows BlockIO's
        // protocols, no format.
        .target(
            name: "BlockEngine",
            dependencies: [
                "BlockIO",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // The NBD server: protocol parsing (pure functions) and one queue per client connection.
        // Knows BlockIO only (the disk and queue protocols); no format, no workloads, no screen.
        .target(
            name: "BlockServe",
            dependencies: ["BlockIO"]
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

        // Helpers shared by the test targets (running qemu-img, the built binary, temp dirs, the multi-queue harness).
        .target(name: "TestSupport", dependencies: ["BlockIO"], path: "Tests/TestSupport"),
        // Unit tests mirror the library targets (end-to-end tests that run the binary are EndToEndTests).
        .testTarget(name: "BlockIOTests", dependencies: ["BlockIO", "TestSupport"]),
        .testTarget(name: "Qcow2Tests", dependencies: ["BlockCore", "BlockIO", "Qcow2", "TestSupport"]),
        .testTarget(name: "VhdxTests", dependencies: ["BlockCore", "BlockIO", "BlockMap", "Vhdx", "Vhd", "TestSupport"]),
        .testTarget(name: "VhdTests", dependencies: ["BlockCore", "BlockIO", "Vhd", "TestSupport"]),
        .testTarget(name: "VmdkTests", dependencies: ["BlockCore", "BlockIO", "Vmdk", "TestSupport"]),
        .testTarget(name: "RawTests", dependencies: ["BlockCore", "BlockIO", "Raw", "TestSupport"]),
        .testTarget(name: "BlockMapTests", dependencies: ["BlockMap", "BlockIO", "TestSupport"]),
        .testTarget(name: "BlockInspectTests", dependencies: ["BlockCore", "BlockInspect", "BlockIO", "TestSupport"]),
        .testTarget(name: "BlockCoreTests", dependencies: ["BlockCore", "BlockInspect", "TestSupport"]),
        .testTarget(name: "BlockEngineTests", dependencies: ["BlockEngine", "BlockCore", "TestSupport"]),
        .testTarget(name: "BlockScopeUITests", dependencies: ["BlockScopeUI", "BlockEngine", "BlockCore", "BlockInspect", "BlockIO", "BlockServe", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["BlockCore", "BlockIO", "Vhdx", "TestSupport"]),
        .testTarget(name: "BlockServeTests", dependencies: ["BlockServe", "BlockCore", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
