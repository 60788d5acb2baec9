import Foundation
import Synchronization
import Testing

@testable import Platform

/// Group commit: who returns after which directory fsync. The fsync is held by the test
/// (semaphores), so each step is observed, not timed.
@Suite struct DirectorySyncTests {
    let dir = TemporaryDirectory()

    /// An fsync that blocks its `n`th call until `release(n)`, and fails the calls in `failing`.
    final class HeldFsync: Sendable {
        let calls = Atomic<Int>(0)
        let gates = (0..<4).map { _ in DispatchSemaphore(value: 0) }
        let failing: Set<Int>

        init(failing: Set<Int> = []) { self.failing = failing }

        func call(_ descriptor: Int32, _ path: String) throws(SystemError) {
            let n = calls.add(1, ordering: .sequentiallyConsistent).newValue
            if n <= gates.count { gates[n - 1].wait() }
            if failing.contains(n) { throw SystemError(call: "fsync", path: path, errno: EIO) }
        }

        func release(_ n: Int) { gates[n - 1].signal() }
    }

    /// Runs `sync()` on a thread; `done` is set when it returns, `failed` when it threw.
    final class Caller: Sendable {
        let done = Atomic<Bool>(false)
        let failed = Atomic<Bool>(false)
        let finished = DispatchSemaphore(value: 0)

        init(_ sync: DirectorySync) {
            Thread.detachNewThread {
                do { try sync.sync() } catch { self.failed.store(true, ordering: .sequentiallyConsistent) }
                self.done.store(true, ordering: .sequentiallyConsistent)
                self.finished.signal()
            }
        }
        var isDone: Bool { done.load(ordering: .sequentiallyConsistent) }
        var didFail: Bool { failed.load(ordering: .sequentiallyConsistent) }
    }

    /// Waits for `condition` (a step another thread takes); a wrong implementation never
    /// takes it, which fails the test after 10 s instead of hanging it.
    static func waitUntil(_ condition: () -> Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        for _ in 0..<10_000 where !condition() { usleep(1_000) }
        #expect(condition(), "the step never came", sourceLocation: sourceLocation)
    }

    @Test func aSingleCallSyncsTheDirectory() throws {
        let sync = DirectorySync(path: dir.path)
        try sync.sync()
        try sync.sync()
        #expect(sync.syncCount == 2)
    }

    @Test func callersArrivingDuringASyncShareTheNextAndWaitForIt() {
        let fsync = HeldFsync()
        let sync = DirectorySync(path: dir.path, fsync: fsync.call)
        let first = Caller(sync)
        Self.waitUntil { fsync.calls.load(ordering: .sequentiallyConsistent) == 1 }  // first is syncing
        let second = Caller(sync)
        let third = Caller(sync)
        Self.waitUntil { sync.registeredCount == 3 }
        #expect(!first.isDone && !second.isDone && !third.isDone)
        fsync.release(1)
        first.finished.wait()
        // The two arrived after the first sync began: it does not cover their renames, so
        // they wait for a second one, which one of them leads.
        Self.waitUntil { fsync.calls.load(ordering: .sequentiallyConsistent) == 2 }
        #expect(!second.isDone && !third.isDone)
        fsync.release(2)
        second.finished.wait()
        third.finished.wait()
        #expect(!first.didFail && !second.didFail && !third.didFail)
        #expect(sync.syncCount == 2)  // three callers, two fsyncs
    }

    @Test func aFailedSyncIsThrownToEveryCallerItCoveredAndLaterCallersAreSyncedAgain() {
        let fsync = HeldFsync(failing: [2])
        let sync = DirectorySync(path: dir.path, fsync: fsync.call)
        let first = Caller(sync)
        Self.waitUntil { fsync.calls.load(ordering: .sequentiallyConsistent) == 1 }
        let second = Caller(sync)
        let third = Caller(sync)
        Self.waitUntil { sync.registeredCount == 3 }
        fsync.release(1)
        first.finished.wait()
        Self.waitUntil { fsync.calls.load(ordering: .sequentiallyConsistent) == 2 }
        fsync.release(2)  // fails
        second.finished.wait()
        third.finished.wait()
        #expect(!first.didFail)
        #expect(second.didFail && third.didFail)
        // A later caller is not covered by the failed sync, nor told of it: a sync of its own.
        fsync.release(3)
        let fourth = Caller(sync)
        fourth.finished.wait()
        #expect(!fourth.didFail)
        #expect(sync.syncCount == 3)
    }

    @Test func aMissingDirectoryIsAnErrorAndTheDirectoryIsOpenedAgainAfter() throws {
        let path = dir.path + "/later"
        let sync = DirectorySync(path: path)
        #expect(throws: SystemError.self) { try sync.sync() }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        try sync.sync()
    }
}
