import Foundation
import Testing

@testable import Queue

@Suite struct QueueIndexTests {
    @Test func dueEntriesComeByPriorityThenName() {
        var index = QueueIndex()
        let a = "batch_100_0000000a"
        let b = "batch_200_0000000b"
        let c = "batch_300_0000000c"
        index.insert(b, priority: 2, notBefore: nil)
        index.insert(c, priority: 1, notBefore: nil)
        index.insert(a, priority: 2, notBefore: nil)
        index.insert(a, priority: 1, notBefore: nil)  // already known: ignored
        let now = Date()
        #expect(
            [index.popNext(now: now), index.popNext(now: now), index.popNext(now: now), index.popNext(now: now)]
                == [c, a, b, nil]
        )
    }

    @Test func deferredEntriesWaitForTheirTime() {
        var index = QueueIndex()
        let now = Date()
        let late = "batch_100_0000000a"
        let soon = "batch_200_0000000b"
        index.insert(late, priority: 1, notBefore: now.addingTimeInterval(10))
        index.insert(soon, priority: 3, notBefore: nil)
        #expect(index.deferredCount == 1)
        #expect(index.nextDue == now.addingTimeInterval(10))
        #expect(index.popNext(now: now) == soon)
        #expect(index.popNext(now: now) == nil)
        #expect(index.popNext(now: now.addingTimeInterval(10)) == late)
        #expect(index.count == 0)
    }

    @Test func aFullIndexKeepsTheOldestAndCountsTheRestOutside() {
        var index = QueueIndex(limit: 3)
        for n in 1...5 { index.insert("batch_\(n)00_0000000a", priority: 2, notBefore: nil) }
        #expect(index.count == 3 && index.outside == 2 && index.incomplete && index.dueOutside)
        #expect(!index.contains("batch_400_0000000a"))
        let now = Date()
        #expect(
            [index.popNext(now: now), index.popNext(now: now), index.popNext(now: now), index.popNext(now: now)]
                == ["batch_100_0000000a", "batch_200_0000000a", "batch_300_0000000a", nil]
        )
    }

    @Test func aBetterNewcomerTakesThePlaceOfTheDueEntryClaimedLast() {
        var index = QueueIndex(limit: 2)
        index.insert("batch_100_0000000a", priority: 2, notBefore: nil)
        index.insert("batch_200_0000000a", priority: 3, notBefore: nil)
        index.insert("batch_300_0000000a", priority: 1, notBefore: nil)  // a password reset: in
        #expect(!index.contains("batch_200_0000000a") && index.outside == 1)
        index.insert("batch_400_0000000a", priority: 2, notBefore: nil)  // younger, same priority: out
        #expect(!index.contains("batch_400_0000000a") && index.outside == 2)
        let now = Date()
        #expect([index.popNext(now: now), index.popNext(now: now)] == ["batch_300_0000000a", "batch_100_0000000a"])
    }

    @Test func dueNewcomersNeverDisplaceDeferredEntries() {
        var index = QueueIndex(limit: 2)
        let now = Date()
        index.insert("batch_100_0000000a", priority: 1, notBefore: now.addingTimeInterval(10))  // scheduled
        for n in 2...9 { index.insert("batch_\(n)00_0000000a", priority: 3, notBefore: nil, now: now) }
        #expect(index.contains("batch_100_0000000a") && index.dueCount == 2 && index.deferredCount == 1)
        #expect(index.wakeup == nil)  // no deferred entry left out
        // Its time comes: it goes before the due ones, by its priority.
        #expect(index.popNext(now: now.addingTimeInterval(10)) == "batch_100_0000000a")
    }

    @Test func theSoonestDeferredStayAndTheWakeUpIsTheFirstLeftOut() {
        var index = QueueIndex(limit: 2)
        let now = Date()
        index.insert("batch_100_0000000a", priority: 2, notBefore: now.addingTimeInterval(30), now: now)
        index.insert("batch_200_0000000a", priority: 2, notBefore: now.addingTimeInterval(10), now: now)
        index.insert("batch_300_0000000a", priority: 2, notBefore: now.addingTimeInterval(20), now: now)
        #expect(!index.contains("batch_100_0000000a") && index.wakeup == now.addingTimeInterval(30))
        index.insert("batch_400_0000000a", priority: 2, notBefore: now.addingTimeInterval(25), now: now)
        #expect(!index.contains("batch_400_0000000a") && index.wakeup == now.addingTimeInterval(25))
        #expect(!index.dueOutside && index.nextDue == now.addingTimeInterval(10))
        #expect(
            !index.wantsRefill(now: now.addingTimeInterval(24)) && index.wantsRefill(now: now.addingTimeInterval(25))
        )
        // An entry whose time has passed is due, not deferred.
        index.insert("batch_500_0000000a", priority: 2, notBefore: now.addingTimeInterval(-1), now: now)
        #expect(index.dueCount == 1)
    }

    @Test func aPassThatLeftNoDueEmailOutEndsTheWantForSweeps() {
        var index = QueueIndex(limit: 4)
        for n in 1...6 { index.insert("batch_\(n)00_0000000a", priority: 2, notBefore: nil) }
        index.beginPass()
        index.endSweep(unoffered: 3, passEnded: false)
        #expect(index.dueOutside && index.outside == 3)
        for _ in 0..<4 { _ = index.popNext(now: Date()) }
        #expect(index.wantsRefill(now: Date()))
        index.endSweep(unoffered: 0, passEnded: true)  // the pass offered the rest; none left out
        #expect(!index.dueOutside && !index.incomplete && !index.wantsRefill(now: Date()))
        // A due email left out during a pass keeps the want after it.
        index.beginPass()
        for n in 7...12 { index.insert("batch_\(n)00_0000000a", priority: 2, notBefore: nil) }
        index.endSweep(unoffered: 0, passEnded: true)
        #expect(index.dueOutside && index.outside == 2)
    }

    @Test func aRefillIsWantedWhenADueEmailIsOutsideAndFewAreDue() {
        var index = QueueIndex(limit: 4)
        for n in 1...5 { index.insert("batch_\(n)00_0000000a", priority: 2, notBefore: nil) }
        #expect(!index.wantsRefill(now: Date()))  // 4 due of 4
        _ = index.popNext(now: Date())
        _ = index.popNext(now: Date())
        #expect(!index.wantsRefill(now: Date()))  // 2 of 4: half
        _ = index.popNext(now: Date())
        #expect(index.wantsRefill(now: Date()) && index.refillSize == 3)
    }
}

@Suite struct FileKeyTests {
    @Test(arguments: ["batch_1796020531014_d4a4016b", "batch_0_00000000", "batch_1_0000000a"])
    func canonicalNamesRoundTrip(_ name: String) throws {
        #expect(try #require(FileKey(name)).name == name)
    }

    @Test(arguments: [
        "batch_x_d4a4016b", "batch_01_d4a4016b", "batch_1_D4A4016B", "batch_1_d4a4016", "batch__d4a4016b",
        "other_1_d4a4016b",
    ])
    func otherNamesAreNotKeys(_ name: String) {
        #expect(FileKey(name) == nil)
    }

    @Test func foreignNamesAreOfferedFirst() {
        var index = QueueIndex()
        index.insert("batch_5_0000000a", priority: 1, notBefore: nil)
        index.insert("batch_odd", priority: 3, notBefore: nil)
        #expect(index.contains("batch_odd"))
        #expect(index.popNext(now: Date()) == "batch_odd")
        #expect(index.popNext(now: Date()) == "batch_5_0000000a")
    }

    @Test func aRemovedEntryLeavesCountsAndTheNextDueTime() {
        var index = QueueIndex()
        let later = Date().addingTimeInterval(3600)
        index.insert("batch_1_0000000a", priority: 2, notBefore: nil)
        index.insert("batch_2_0000000b", priority: 2, notBefore: later)
        index.insert("batch_3_0000000c", priority: 1, notBefore: later.addingTimeInterval(60))
        let removed = index.remove("batch_2_0000000b")
        let again = index.remove("batch_2_0000000b")
        #expect(removed && !again)
        #expect(index.count == 2 && index.deferredCount == 1)
        #expect(index.nextDue == later.addingTimeInterval(60))
        let first = index.remove("batch_1_0000000a")
        #expect(first && index.popNext(now: Date()) == nil)
        let unknown = index.remove("batch_9_00000009")
        #expect(!unknown)
    }
}
