import Foundation
import Glibc
import Synchronization
import Testing

@testable import Platform

// A thread parked in a SIGUSR1 handler stands for one the scheduler did not run for a while.
nonisolated(unsafe) private var parkGate = sem_t()
private let parked = Atomic<Bool>(false)

/// A caller whose covering sync failed is told so however long it stays asleep: here through a
/// success and 16 more failures (found by the hostile review: failures were once kept only 16
/// deep, after which such a caller returned as durable).
@Suite(.serialized) struct DirectorySyncFailureTests {
    let dir = TemporaryDirectory()

    final class Fsync: Sendable {
        let calls = Atomic<Int>(0)
        let gates = (0..<2).map { _ in DispatchSemaphore(value: 0) }
        let leaders = Mutex<[Int: pthread_t]>([:])
        func call(_ descriptor: Int32, _ path: String) throws(SystemError) {
            let n = calls.add(1, ordering: .sequentiallyConsistent).newValue
            leaders.withLock { $0[n] = pthread_self() }
            if n <= gates.count { gates[n - 1].wait() }
            if n == 2 || (n >= 4 && n <= 19) { throw SystemError(call: "fsync", path: path, errno: EIO) }
        }
    }

    final class Caller: Sendable {
        let failed = Atomic<Bool>(false)
        let thread = Mutex<pthread_t?>(nil)
        let finished = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        init(_ sync: DirectorySync) {
            Thread.detachNewThread {
                var set = sigset_t()
                sigemptyset(&set)
                sigaddset(&set, SIGUSR1)
                pthread_sigmask(SIG_UNBLOCK, &set, nil)
                self.thread.withLock { $0 = pthread_self() }
                self.started.signal()
                do { try sync.sync() } catch { self.failed.store(true, ordering: .sequentiallyConsistent) }
                self.finished.signal()
            }
            started.wait()
        }
        var didFail: Bool { failed.load(ordering: .sequentiallyConsistent) }
    }

    static func waitUntil(_ condition: () -> Bool) {
        for _ in 0..<10_000 where !condition() { usleep(1_000) }
        #expect(condition())
    }

    @Test func aCallerWakingLongAfterItsSyncFailedIsStillToldOfTheFailure() {
        sem_init(&parkGate, 0, 0)
        signal(SIGUSR1) { _ in
            parked.store(true, ordering: .sequentiallyConsistent)
            sem_wait(&parkGate)
        }
        let fsync = Fsync()
        let sync = DirectorySync(path: dir.path, fsync: fsync.call)
        let first = Caller(sync)
        Self.waitUntil { fsync.calls.load(ordering: .sequentiallyConsistent) == 1 }
        let c = Caller(sync)
        let d = Caller(sync)
        Self.waitUntil { sync.registeredCount == 3 }
        fsync.gates[0].signal()
        first.finished.wait()
        Self.waitUntil { fsync.calls.load(ordering: .sequentiallyConsistent) == 2 }  // c or d leads sync 2
        usleep(100_000)  // the other is back in pthread_cond_wait
        let leader = fsync.leaders.withLock { $0[2]! }
        let (leading, waiting) = pthread_equal(c.thread.withLock { $0! }, leader) != 0 ? (c, d) : (d, c)
        let rc = pthread_kill(waiting.thread.withLock { $0! }, SIGUSR1)
        #expect(rc == 0)
        Self.waitUntil { parked.load(ordering: .sequentiallyConsistent) }
        fsync.gates[1].signal()  // sync 2, covering both, fails
        leading.finished.wait()
        #expect(leading.didFail)
        let later = Caller(sync)  // then one that succeeds (durable passes the parked ticket)
        later.finished.wait()
        #expect(!later.didFail)
        for _ in 0..<16 {  // then 16 failed syncs, each its own caller's: the first failure is pruned
            let other = Caller(sync)
            other.finished.wait()
            #expect(other.didFail)
        }
        sem_post(&parkGate)  // the parked caller runs again
        waiting.finished.wait()
        // Its entry's sync failed, as its leader was told; the success that followed does not make
        // it durable (sync() says so: "a later sync's success does not cover an entry whose sync
        // failed"), yet once its failure is pruned it returns as if durable.
        #expect(waiting.didFail, "sync() returned as durable for a caller whose covering fsync failed")
    }
}
