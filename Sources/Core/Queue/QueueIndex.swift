import DequeModule
import Foundation
import HeapModule

/// The in-memory order of pending queue files, so that a claim costs O(log n) instead of a
/// scan of the queue directory.
///
/// Due entries wait in one sorted deque per priority (1 first), in order of the name's
/// millisecond timestamp (FIFO): new emails arrive in that order, so an insert is an append
/// and a claim takes the front, with no tree to walk (at 100,000 entries every level of a
/// heap is a cache miss). An entry that arrives out of order is put in place by binary
/// search. Deferred entries wait in a heap ordered by due time and join the due ones when
/// it comes. The index is a hint: an entry whose file another process has
/// claimed meanwhile is dropped when its rename fails.
///
/// Entries are plain integers (`FileKey`: timestamp and the 8 hex digits of the name), not
/// strings: at 100,000 entries, comparing and hashing strings kept on the heap costs cache
/// misses on every claim. A pending file whose name is not of the canonical form (not one
/// of ours) is kept apart and offered first, so the claim that reads it can set it aside.
///
/// **Bounded.** The index holds at most `limit` due entries and `limit` deferred ones
/// (`QUEUE_ACTIVE_LIMIT`, as postfix's `qmgr_message_active_limit` caps its active queue), so
/// mailworkerd's memory does not grow with the backlog. A due newcomer to a full due part
/// competes with the due entry claimed last (the youngest of the lowest priority), a deferred
/// newcomer to a full deferred part with the one due last; a due newcomer never displaces a
/// deferred entry, so a scheduled or retried email keeps its place however much new mail
/// arrives. The loser is left out (it stays on disk), and the index remembers what it left
/// out: whether a due email may be outside (`dueOutside`), and when the first deferred one
/// left out comes due (`wakeup`). The file queue then sweeps the folder by name in passes
/// (`beginPass`, `endSweep`), each of which offers every pending file not held once.
struct QueueIndex {
    private struct Due: Comparable {
        let priority: Int32
        let key: FileKey
        static func < (a: Due, b: Due) -> Bool { (a.priority, a.key) < (b.priority, b.key) }
    }

    private struct Waiting: Comparable {
        let due: Date
        let entry: Due
        static func < (a: Waiting, b: Waiting) -> Bool { (a.due, a.entry) < (b.due, b.entry) }
    }

    /// Due keys per priority (index 0 for priority 1, ...), each sorted ascending.
    private var due: [Deque<FileKey>] = Array(repeating: [], count: 3)
    private var waiting = Heap<Waiting>()
    private var known = Set<FileKey>()
    /// Entries whose names are not canonical, with their due time (nil: due now).
    private var foreign: [(name: String, notBefore: Date?)] = []

    /// The most due entries held, and the most deferred ones (`QUEUE_ACTIVE_LIMIT`).
    let limit: Int
    /// Whether pending files may be outside the index (left out, or not offered yet).
    private(set) var incomplete = false
    /// Whether a due email may be outside: one was left out, or a pass has names to offer.
    private(set) var dueOutside = false
    /// When the first deferred email left out comes due.
    private(set) var wakeup: Date?
    /// Pending files outside: those the last sweep did not offer and those left out since
    /// its pass began (an estimate: one canceled, or left out twice, counts until the pass ends).
    private(set) var outside = 0
    /// Entries left out, all and due ones, and both counts when the current pass began.
    private var narrowings = 0
    private var dueNarrowings = 0
    private var pass = (narrowings: 0, dueNarrowings: 0)

    /// - Parameter limit: the most due entries to hold, and the most deferred ones (at least 1).
    init(limit: Int = .max) {
        self.limit = max(1, limit)
    }

    /// Entries in the index, due or not.
    var count: Int { known.count + foreign.count }
    /// Entries due now or since, that `popNext` takes before the deferred ones.
    var dueCount: Int { due.reduce(0) { $0 + $1.count } }
    /// Whether a sweep of the folder would bring in emails to claim: a due one may be outside
    /// and fewer than half of the limit are due, or a deferred one left out is due.
    func wantsRefill(now: Date) -> Bool {
        (dueOutside && dueCount < limit / 2) || wakeup.map { $0 <= now } ?? false
    }
    /// How many names a sweep offers: the room left for due entries, and at least half of
    /// the limit, so that a pass over emails not due yet takes few listings of the folder.
    var refillSize: Int { max(limit - dueCount, limit / 2, 1) }
    /// Entries not yet due.
    var deferredCount: Int { waiting.count + foreign.filter { $0.notBefore != nil }.count }
    /// When the earliest deferred entry becomes due, if any.
    var nextDue: Date? {
        ([waiting.min?.due] + foreign.map(\.notBefore)).compactMap { $0 }.min()
    }

    func contains(_ name: String) -> Bool {
        guard let key = FileKey(name) else { return foreign.contains { $0.name == name } }
        return known.contains(key)
    }

    /// Adds a pending file's base name; `notBefore` nil (or not after `now`) means due now.
    /// A name already in the index is left as it is; a full part leaves out the newcomer or
    /// the entry it outranks.
    mutating func insert(_ name: String, priority: Int, notBefore: Date?, now: Date = Date()) {
        guard let key = FileKey(name) else {
            if !foreign.contains(where: { $0.name == name }) { foreign.append((name, notBefore)) }
            return
        }
        guard !known.contains(key) else { return }
        let entry = Due(priority: min(max(Int32(clamping: priority), 1), 3), key: key)
        if let notBefore, notBefore > now {
            let newcomer = Waiting(due: notBefore, entry: entry)
            if waiting.count >= limit {
                guard let latest = waiting.max, newcomer < latest else {
                    return leaveOut(newcomer.entry.key, due: notBefore)
                }
                waiting.removeMax()
                known.remove(latest.entry.key)
                leaveOut(latest.entry.key, due: latest.due)
            }
            known.insert(key)
            waiting.insert(newcomer)
        } else {
            if dueCount >= limit {
                guard let lane = due.lastIndex(where: { !$0.isEmpty }), let last = due[lane].last,
                    entry < Due(priority: Int32(lane + 1), key: last)
                else { return leaveOut(key, due: nil) }
                due[lane].removeLast()
                known.remove(last)
                leaveOut(last, due: nil)
            }
            known.insert(key)
            makeDue(entry)
        }
    }

    private mutating func leaveOut(_ key: FileKey, due notBefore: Date?) {
        incomplete = true
        narrowings += 1
        outside += 1
        if let notBefore {
            wakeup = min(wakeup ?? notBefore, notBefore)
        } else {
            dueNarrowings += 1
            dueOutside = true
        }
    }

    /// A pass over the folder begins: it will offer every pending file not held, so the
    /// deferred ones left out need no wake-up of their own until it has.
    mutating func beginPass() {
        pass = (narrowings, dueNarrowings)
        wakeup = nil
    }

    /// A sweep of the current pass listed the folder and left `unoffered` names for the next
    /// one (0: the pass ended). Call before inserting what it offers. At the end of a pass,
    /// a due email is outside only if one was left out during it.
    mutating func endSweep(unoffered: Int, passEnded: Bool) {
        if passEnded {
            dueOutside = dueNarrowings != pass.dueNarrowings
            incomplete = narrowings != pass.narrowings
        } else {
            dueOutside = true
            incomplete = true
        }
        outside = unoffered + (narrowings - pass.narrowings)
    }

    private mutating func makeDue(_ entry: Due) {
        let lane = Int(min(max(entry.priority, 1), 3)) - 1
        if let last = due[lane].last, entry.key < last {
            var low = 0
            var high = due[lane].count  // first position whose key is greater
            while low < high {
                let mid = (low + high) / 2
                if due[lane][mid] < entry.key { low = mid + 1 } else { high = mid }
            }
            due[lane].insert(entry.key, at: low)
        } else {
            due[lane].append(entry.key)
        }
    }

    /// Removes and returns the oldest canonical entry whose name's timestamp (its email's
    /// acceptance, in milliseconds) is before `cutoff`, due or not; nil when there is none.
    /// The due lanes are sorted, so their fronts are checked; the waiting heap is scanned
    /// (and rebuilt when an entry leaves it): meant for the rare expiry of old emails.
    /// Names in `skipping` (old by name, not by their content: requeued) are passed over,
    /// and so are the due lanes' fronts among them, which a scan then replaces. Entries whose
    /// names are not canonical carry no time: they are offered first, unless skipped.
    mutating func popOldest(before cutoff: Int64, skipping: Set<String> = []) -> String? {
        if let i = foreign.firstIndex(where: { !skipping.contains($0.name) }) {
            return foreign.remove(at: i).name
        }
        let skipped = Set(skipping.compactMap(FileKey.init))
        var best: (key: FileKey, lane: Int?)?
        for (lane, keys) in due.enumerated() {
            for key in keys {
                guard key.timestamp < cutoff else { break }  // sorted: the rest are younger
                if skipped.contains(key) { continue }
                if best.map({ key < $0.key }) ?? true { best = (key, lane) }
                break
            }
        }
        for waiter in waiting.unordered where waiter.entry.key.timestamp < cutoff && !skipped.contains(waiter.entry.key)
        {
            if best.map({ waiter.entry.key < $0.key }) ?? true { best = (waiter.entry.key, nil) }
        }
        guard let best else { return nil }
        if let lane = best.lane {
            due[lane].removeAll { $0 == best.key }
        } else {
            waiting = Heap(waiting.unordered.filter { $0.entry.key != best.key })
        }
        known.remove(best.key)
        return best.key.name
    }

    /// Removes `name` wherever it is (due or waiting); false when the index does not hold
    /// it. Linear in the entries of its lane or of the waiting heap: for the rare cancel.
    mutating func remove(_ name: String) -> Bool {
        guard let key = FileKey(name) else {
            guard let i = foreign.firstIndex(where: { $0.name == name }) else { return false }
            foreign.remove(at: i)
            return true
        }
        guard known.remove(key) != nil else { return false }
        for lane in due.indices {
            if let i = due[lane].firstIndex(of: key) {
                due[lane].remove(at: i)
                return true
            }
        }
        waiting = Heap(waiting.unordered.filter { $0.entry.key != key })
        return true
    }

    /// Removes and returns the next name to try at `now`, or nil when nothing is due.
    mutating func popNext(now: Date) -> String? {
        // Few and rare (names we did not write): a scan, honouring their due times.
        if let i = foreign.lastIndex(where: { $0.notBefore.map { $0 <= now } ?? true }) {
            return foreign.remove(at: i).name
        }
        while let first = waiting.min, first.due <= now {
            makeDue(waiting.removeMin().entry)
        }
        guard let lane = due.firstIndex(where: { !$0.isEmpty }) else { return nil }
        let next = due[lane].removeFirst()
        known.remove(next)
        return next.name
    }
}

/// A canonical queue file base name, `batch_{timestamp_ms}_{uuid8}` (lowercase hex), as two
/// integers; ordered by timestamp, then by the hex digits.
struct FileKey: Hashable, Comparable {
    let timestamp: Int64
    let tag: UInt32

    /// Parses a base name; nil unless it is exactly the canonical form, so that `name`
    /// gives back the same string.
    init?(_ name: String) {
        let utf8 = Array(name.utf8)
        guard utf8.count >= 6 + 1 + 1 + 8, utf8.starts(with: Array("batch_".utf8)),
            utf8[utf8.count - 9] == UInt8(ascii: "_")
        else { return nil }
        let digits = utf8[6..<(utf8.count - 9)]
        let hex = utf8[(utf8.count - 8)...]
        guard digits.count <= 18, digits.first != UInt8(ascii: "0") || digits.count == 1,
            digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            hex.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
            let timestamp = Int64(String(decoding: digits, as: UTF8.self)),
            let tag = UInt32(String(decoding: hex, as: UTF8.self), radix: 16)
        else { return nil }
        self.timestamp = timestamp
        self.tag = tag
    }

    var name: String {
        "batch_\(timestamp)_" + String(tag, radix: 16).leftPadded(to: 8)
    }

    static func < (a: FileKey, b: FileKey) -> Bool { (a.timestamp, a.tag) < (b.timestamp, b.tag) }
}
