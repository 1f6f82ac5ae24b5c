extension TestSupport {
    /// Throws a failure naming `tool` when it does not run (`tool --version` fails): the
    /// test dependencies (fio, qemu-img, ...) are installed by scripts/install-deps.sh, and
    /// a test whose oracle is missing fails saying so instead of skipping silently.
    public static func require(_ tool: String, for purpose: String) throws {
        if (try? run(tool, ["--version"]).status) != 0 {
            throw TestFailure("\(tool) is not installed; it is \(purpose) (scripts/install-deps.sh installs it)")
        }
    }
}
