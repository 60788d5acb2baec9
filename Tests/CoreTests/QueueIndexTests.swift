import Foundation
import Testing
@testable import Core

@Suite struct QueueIndexTests {
    @Test func dueEntriesComeByPriorityThenName() {
        var index = QueueIndex()
        index.insert("b", priority: 2, notBefore: nil)
        index.insert("c", priority: 1, notBefore: nil)
        index.insert("a", priority: 2, notBefore: nil)
        index.insert("a", priority: 1, notBefore: nil)  // already known: ignored
        let now = Date()
        #expect([index.popNext(now: now), index.popNext(now: now), index.popNext(now: now), index.popNext(now: now)]
                == ["c", "a", "b", nil])
    }

    @Test func deferredEntriesWaitForTheirTime() {
        var index = QueueIndex()
        let now = Date()
        index.insert("late", priority: 1, notBefore: now.addingTimeInterval(10))
        index.insert("now", priority: 3, notBefore: nil)
        #expect(index.deferredCount == 1)
        #expect(index.nextDue == now.addingTimeInterval(10))
        #expect(index.popNext(now: now) == "now")
        #expect(index.popNext(now: now) == nil)
        #expect(index.popNext(now: now.addingTimeInterval(10)) == "late")
        #expect(index.count == 0)
    }
}
