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
