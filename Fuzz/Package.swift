// swift-tools-version: 6.0
// libFuzzer targets for blockscope's parsers, kept out of the main package so that
// `swift build` and `swift test` there are untouched. Built by scripts/fuzz/run.sh with
// `-Xswiftc -sanitize=fuzzer,address` into .build-fuzz (see docs/FUZZING.md).
import PackageDescription

let core = Target.Dependency.product(name: "BlockCore", package: "blockscope")
// The fuzzing seam (`@_spi(Fuzzing)`: SystemFile.memoryFiles, FuzzingLimits) lives in BlockIO.
let io = Target.Dependency.product(name: "BlockIO", package: "blockscope")
let engine = Target.Dependency.product(name: "BlockEngine", package: "blockscope")
let serve = Target.Dependency.product(name: "BlockServe", package: "blockscope")
let ui = Target.Dependency.product(name: "BlockScopeUI", package: "blockscope")

let package = Package(
    name: "blockscope-fuzz",
    products: [
        .executable(name: "qcow2-read", targets: ["FuzzQcow2Read"]),
        .executable(name: "qcow2-write", targets: ["FuzzQcow2Write"]),
        .executable(name: "vhdx", targets: ["FuzzVhdx"]),
        .executable(name: "vhdx-write", targets: ["FuzzVhdxWrite"]),
        .executable(name: "vhd", targets: ["FuzzVhd"]),
        .executable(name: "vmdk", targets: ["FuzzVmdk"]),
        .executable(name: "explain", targets: ["FuzzExplain"]),
        .executable(name: "jobfile", targets: ["FuzzJobFile"]),
        .executable(name: "script", targets: ["FuzzScript"]),
        .executable(name: "nbd", targets: ["FuzzNbd"]),
        .executable(name: "vhost", targets: ["FuzzVhost"]),
        .executable(name: "json", targets: ["FuzzJson"]),
        .executable(name: "trace", targets: ["FuzzTrace"]),
        .executable(name: "theme", targets: ["FuzzTheme"]),
        .executable(name: "prompt", targets: ["FuzzPrompt"]),
    ],
    dependencies: [.package(name: "blockscope", path: "..")],
    targets: [
        // The harness's own bookkeeping in C, built without coverage instrumentation.
        .target(name: "CFuzzSupport"),
        .target(name: "FuzzSupport", dependencies: [core, io, "CFuzzSupport"]),
        .executableTarget(name: "FuzzQcow2Read", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzQcow2Write", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzVhdx", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzVhdxWrite", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzVhd", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzExplain", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzVmdk", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzJobFile", dependencies: ["FuzzSupport", engine]),
        .executableTarget(name: "FuzzScript", dependencies: ["FuzzSupport", engine]),
        .executableTarget(name: "FuzzNbd", dependencies: ["FuzzSupport", core, serve]),
        .executableTarget(name: "FuzzVhost", dependencies: ["FuzzSupport", core, serve]),
        .executableTarget(name: "FuzzJson", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzTrace", dependencies: ["FuzzSupport", engine]),
        .executableTarget(name: "FuzzTheme", dependencies: ["FuzzSupport", ui]),
        .executableTarget(name: "FuzzPrompt", dependencies: ["FuzzSupport", ui]),
    ],
    swiftLanguageModes: [.v6]
)
