import Foundation
import HeapModule

/// The in-memory order of pending queue files, so that a claim costs O(log n) instead of a
/// scan of the queue directory.
///
/// Due entries are ordered by priority (1 first), then by name (the millisecond timestamp
/// makes that FIFO). Deferred entries wait in a second heap ordered by their due time and
/// join the due ones when it comes. The index is a hint: an entry whose file another process
/// has claimed meanwhile is dropped when its rename fails.
struct QueueIndex {
    private struct Due: Comparable {
        let priority: Int
        let name: String
        static func < (a: Due, b: Due) -> Bool { (a.priority, a.name) < (b.priority, b.name) }
    }

    private struct Waiting: Comparable {
        let due: Date
        let entry: Due
        static func < (a: Waiting, b: Waiting) -> Bool { (a.due, a.entry) < (b.due, b.entry) }
    }

    private var due = Heap<Due>()
    private var waiting = Heap<Waiting>()
    private var known = Set<String>()

    /// Entries in the index, due or not.
    var count: Int { known.count }
    /// Entries not yet due.
    var deferredCount: Int { waiting.count }
    /// When the earliest deferred entry becomes due, if any.
    var nextDue: Date? { waiting.min?.due }

    func contains(_ name: String) -> Bool { known.contains(name) }

    /// Adds a pending file's base name; `notBefore` nil means due now. A name already in the
    /// index is left as it is.
    mutating func insert(_ name: String, priority: Int, notBefore: Date?) {
        guard known.insert(name).inserted else { return }
        let entry = Due(priority: priority, name: name)
        if let notBefore { waiting.insert(Waiting(due: notBefore, entry: entry)) } else { due.insert(entry) }
    }

    /// Removes and returns the next name to try at `now`, or nil when nothing is due.
    mutating func popNext(now: Date) -> String? {
        while let first = waiting.min, first.due <= now {
            due.insert(waiting.removeMin().entry)
        }
        guard let next = due.popMin() else { return nil }
        known.remove(next.name)
        return next.name
    }

    mutating func removeAll() {
        due = Heap()
        waiting = Heap()
        known = []
    }
}
