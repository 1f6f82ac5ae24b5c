import ArgumentParser
import BlockCore

/// The `blockscope` command: a disk-image and I/O inspector. Every subcommand names itself
/// (`commandName:`): a name derived from the type costs a runtime protocol-conformance scan per
/// subcommand at every start (about a fifth of `info`'s CPU time on a small image).
struct Blockscope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blockscope",
        abstract: "Inspect disk images (\(Create.formatNames)) and watch an io_uring engine run workloads on them.",
        version: "blockscope \(blockscopeVersion)",
        subcommands: [Info.self, Cat.self, Run.self, Map.self, Check.self, ExplainCommand.self, Create.self, Replay.self, Bench.self, Serve.self, Tui.self],
        defaultSubcommand: Tui.self
    )
}

Blockscope.main()
