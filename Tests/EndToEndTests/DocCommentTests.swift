import Testing
import TestSupport

/// The project's standing rule: every public type and function has a `///` comment.
@Suite("Doc comments")
struct DocCommentTests {
    @Test("every public declaration in Sources/ has a /// doc comment (scripts/check-docs.py)")
    func publicDeclarationsAreDocumented() throws {
        let script = TestSupport.packageRoot.appendingPathComponent("scripts/check-docs.py").path
        let r = try TestSupport.run("python3", [script])
        #expect(r.status == 0, "undocumented public declarations:\n\(r.stdoutText)")
    }
}
