import Testing
import BlockCore
@testable import BlockEngine

/// The command language: sizes, commands, errors with line and column.
@Suite("CommandScript")
struct CommandScriptTests {
    @Test("sizes take k/M/G suffixes and hex")
    func sizes() {
        #expect(CommandScript.parseSize("4k") == 4096)
        #expect(CommandScript.parseSize("1M") == 1 << 20)
        #expect(CommandScript.parseSize("2G") == 2 << 30)
        #expect(CommandScript.parseSize("0x1000") == 4096)
        #expect(CommandScript.parseSize("512") == 512)
        #expect(CommandScript.parseSize("12q") == nil)
        #expect(CommandScript.parseSize("") == nil)
        #expect(CommandScript.parseSize("99999999999999999999G") == nil)
    }

    @Test("a script parses into commands; comments and blank lines are skipped")
    func parse() throws {
        let s = "# demo\nwrite 1M 64k 0xab\n\nread 0 4k   # trailing\nzero 8k 4k\ndiscard 0 512\nfsync\n"
        let lines = try CommandScript.parse(s)
        #expect(lines.map(\.line) == [2, 4, 5, 6, 7])
        #expect(lines[0].command == .write(offset: 1 << 20, length: 65536, pattern: 0xab))
        #expect(lines[1].command == .read(offset: 0, length: 4096, pattern: nil))
        #expect(lines[4].command == .fsync)
    }

    @Test("a parse error names the line and column")
    func errors() {
        do {
            _ = try CommandScript.parse("write 0 4k\nwrite 0 4q\n", source: "s.txt")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("s.txt"))
            #expect(error.description.contains("line 2, column 9"))
        }
        do {
            _ = try CommandScript.parse("  frobnicate 1\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("line 1, column 3"))
            #expect(error.description.contains("unknown command"))
        }
        do {
            _ = try CommandScript.parse("read 0\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("needs a length"))
        }
    }

    @Test("sleep takes a duration with a unit; a bare number is seconds")
    func sleepDurations() throws {
        #expect(CommandScript.parseDuration("500ms") == 500_000_000)
        #expect(CommandScript.parseDuration("2s") == 2_000_000_000)
        #expect(CommandScript.parseDuration("1.5s") == 1_500_000_000)
        #expect(CommandScript.parseDuration("100us") == 100_000)
        #expect(CommandScript.parseDuration("1m") == 60_000_000_000)
        #expect(CommandScript.parseDuration("3") == 3_000_000_000)
        #expect(CommandScript.parseDuration("5x") == nil)
        #expect(CommandScript.parseDuration("-1s") == nil)
        #expect(CommandScript.parseDuration("2d") == nil)
        #expect(try CommandScript.parseLine("sleep 250ms") == .sleep(nanoseconds: 250_000_000))
        do {
            _ = try CommandScript.parse("write 0 4k\nsleep soon\n", source: "p.txt")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("line 2, column 7"))
            #expect(error.description.contains("not a duration"))
        }
    }

    @Test("the engine's language has no UI words: goto, view, theme and pause are the TUI's")
    func uiWordsAreNotEngineCommands() {
        for line in ["goto 1M", "view map", "theme light", "pause look"] {
            do {
                _ = try CommandScript.parseLine(line)
                Issue.record("'\(line)' parsed in the engine's language")
            } catch {
                #expect(error.description.contains("unknown command"))
            }
        }
    }
}
