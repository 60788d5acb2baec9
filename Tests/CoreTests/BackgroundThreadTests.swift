import Foundation
import Synchronization
import Testing

@testable import Platform

/// The one way the programs run a blocking loop on its own thread and wait for its end.
@Suite struct BackgroundThreadTests {
    @Test func joinWaitsForTheBodyToReturn() async {
        let steps = Mutex<[String]>([])
        let thread = BackgroundThread(name: "test-join") {
            usleep(50_000)
            steps.withLock { $0.append("body") }
        }
        await thread.join()
        steps.withLock { $0.append("joined") }
        #expect(steps.withLock { $0 } == ["body", "joined"])
        #expect(thread.isFinished)
        await thread.join()  // again: returns at once
    }

    @Test func joinWithATimeoutGivesUpOnABodyStillRunningAndLaterSucceeds() async {
        let release = Atomic<Bool>(false)
        let thread = BackgroundThread(name: "test-timeout") {
            while !release.load(ordering: .relaxed) { usleep(1_000) }
        }
        let started = Date()
        #expect(await thread.join(timeout: 0.1) == false)
        #expect(Date().timeIntervalSince(started) >= 0.1)
        #expect(!thread.isFinished)
        release.store(true, ordering: .relaxed)
        #expect(await thread.join(timeout: 5))
    }

    @Test func theThreadCarriesItsName() async {
        let name = Mutex<String>("")
        let thread = BackgroundThread(name: "named-thread") {
            let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            name.withLock { $0 = comm.trimmingCharacters(in: .newlines) }
        }
        await thread.join()
        #expect(name.withLock { $0 } == "named-thread")
    }
}
