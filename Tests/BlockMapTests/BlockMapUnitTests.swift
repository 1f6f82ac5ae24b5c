import Testing
import Foundation
import Synchronization
@testable import BlockIO
@testable import BlockMap
import TestSupport

/// The block-map engine's shared pieces in process: the block walk every BAT format maps a
/// request with, the parent path a differencing image records, the metadata lock.
@Suite struct BlockMapUnitTests {
    @Test("forEachBlockPiece covers the range in order, each piece inside one block, for random ranges and block sizes")
    func blockPiecesTileTheRange() throws {
        var rng = SeededRandom(seed: 24)
        for _ in 0..<500 {
            let bs = UInt64(512) << UInt64(rng.below(12))
            let offset = rng.below(UInt64(64) << 20)
            let length = rng.below(bs * 5 + 1)
            var next = offset
            try forEachBlockPiece(offset: offset, length: length, blockSize: bs) { block, inBlock, pos, n throws(BlockError) in
                #expect(pos == next, "pieces are contiguous and in order")
                #expect(n > 0 && inBlock + n <= bs, "a piece stays inside its block")
                #expect(block * bs + inBlock == pos)
                next = pos + n
            }
            #expect(next == offset + length, "the pieces end where the range ends")
        }
    }

    @Test("parentPaths: the relative path, resolved by the file system from the child's folder, is the parent file")
    func relativeParentPathResolvesToTheParent() throws {
        let dir = try TestSupport.makeTempDir("parent-paths"); defer { TestSupport.removeTempDir(dir) }
        let fm = FileManager.default
        for (child, parent) in [("a/b/c.img", "base.img"), ("c.img", "x/y/base.img"), ("a/c.img", "a/base.img"), ("a/b/c.img", "d/e/base.img")] {
            let c = dir + "/" + child, p = dir + "/" + parent
            try fm.createDirectory(atPath: (c as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try fm.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try TestSupport.writeFile(p, [1])
            let (absolute, relative) = parentPaths(child: c, parent: p)
            #expect(!relative.hasPrefix("/"))
            let resolved = URL(fileURLWithPath: (c as NSString).deletingLastPathComponent + "/" + relative).resolvingSymlinksInPath().path
            #expect(resolved == URL(fileURLWithPath: p).resolvingSymlinksInPath().path, "\(child) -> \(parent): \(relative)")
            #expect(URL(fileURLWithPath: absolute).resolvingSymlinksInPath().path == URL(fileURLWithPath: p).resolvingSymlinksInPath().path)
        }
    }

    @Test("MetadataLock excludes: two threads adding under it lose no increment")
    func metadataLockExcludes() {
        final class Counter: @unchecked Sendable { var n = 0 }
        let lock = MetadataLock(), counter = Counter()
        let perThread = 200_000
        let done = Atomic<Int>(0)
        for _ in 0..<2 {
            Thread.detachNewThread {
                for _ in 0..<perThread { lock.run { counter.n += 1 } }
                done.add(1, ordering: .releasing)
            }
        }
        let ok = Progress.wait(timeout: 60) { done.load(ordering: .acquiring) == 2 }
        #expect(ok)
        #expect(lock.run { counter.n } == 2 * perThread)
    }
}
