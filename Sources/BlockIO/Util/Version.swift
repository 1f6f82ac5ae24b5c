/// blockscope's version ("0.1.0"), the one place it is written: `blockscope --version`
/// prints it and the TUI's title bar shows it.
public let blockscopeVersion = "0.1.0"
