import Foundation
import Synchronization
import Testing

@testable import Delivery
@testable import MailModel
@testable import Platform
@testable import Queue

@Suite struct FileQueueTests {
    let dir = TemporaryDirectory()

    /// The retry rules the failure tests apply (the store itself holds none).
    let policy = DeliveryPolicy(retry: RetryPolicy(maxRetries: 2, baseDelay: 1))

    func makeQueue() throws -> FileQueue {
        try FileQueue(layout: QueueLayout(root: dir.path))
    }

    func setModificationTime(_ name: String, secondsAgo: Double) throws {
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSinceNow: -secondsAgo)],
            ofItemAtPath: dir.path + "/queue/" + name
        )
    }

    /// Equal but for `createdAt`, which the file keeps to the millisecond.
    func sameEmail(_ a: QueuedEmail, _ b: QueuedEmail) -> Bool {
        var a = a
        guard abs(a.createdAt.timeIntervalSince(b.createdAt)) < 0.001 else { return false }
        a.createdAt = b.createdAt
        return a == b
    }

    @Test func enqueueWritesOneFileNamedAfterTheRequestID() throws {
        let queue = try makeQueue()
        let e = queuedEmail()
        try queue.enqueue(e)
        #expect(dir.names("queue") == [RequestID.fileBaseName(for: e.requestID)! + ".json"])
    }

    @Test func claimIsFIFOAndRoundTripsTheEmail() throws {
        let queue = try makeQueue()
        let start = Date()
        let emails = (0..<5).map { queuedEmail($0, at: start.addingTimeInterval(Double($0) / 1000)) }
        for e in emails.reversed() { try queue.enqueue(e) }
        var claimed: [QueuedEmail] = []
        while let claim = try queue.claim(now: Date()) {
            claimed.append(claim.email)
            try queue.markSent(claim, at: Date())
        }
        #expect(claimed.map(\.toEmail) == emails.map(\.toEmail))
        #expect(sameEmail(claimed[0], emails[0]))
        #expect(dir.names("queue").isEmpty)
        #expect(dir.names("trash").count == 5)
        #expect(dir.names("trash").allSatisfy { $0.contains(".sent.") })
    }

    @Test func aClaimIsExclusive() throws {
        let queue = try makeQueue()
        let other = try makeQueue()  // another process's view of the same directory
        try queue.enqueue(queuedEmail())
        let first = try #require(try queue.claim(now: Date()))
        #expect(try other.claim(now: Date()) == nil)
        #expect(dir.names("queue").isEmpty)
        #expect(dir.names("queue/active") == [first.name + ".processing.json"])
    }

    @Test func concurrentClaimantsNeverShareAnEmail() async throws {
        let total = 400
        let writer = try makeQueue()
        for n in 0..<total { try writer.enqueue(queuedEmail(n)) }
        let counts = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                let queue = try makeQueue()
                group.addTask {
                    var mine: [String] = []
                    while let claim = try queue.claim(now: Date()) {
                        mine.append(claim.email.requestID)
                        try queue.markSent(claim, at: Date())
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(counts.count == total)
        #expect(Set(counts).count == total)
    }

    /// Workers sharing one queue start together on a backlog: none may find the index empty
    /// while another is still reading the directory (they would sleep until the next poll).
    @Test func workersStartingTogetherOnABacklogAllGetAnEmail() async throws {
        let writer = try makeQueue()
        for n in 0..<2_000 { try writer.enqueue(queuedEmail(n)) }
        let queue = try makeQueue()
        queue.useChangeNotifications()
        let claimants = 8
        let got = Mutex<[Bool]>([])
        let ready = Atomic<Int>(0)
        var threads: [BackgroundThread] = []
        for n in 0..<claimants {
            threads.append(
                BackgroundThread(name: "claimant-\(n)") { @Sendable in
                    ready.add(1, ordering: .relaxed)
                    while ready.load(ordering: .relaxed) < claimants {}  // start together
                    let claim = try? queue.claim(now: Date())
                    got.withLock { $0.append(claim != nil) }
                }
            )
        }
        for thread in threads { await thread.join() }
        #expect(got.withLock { $0 } == Array(repeating: true, count: claimants))
    }

    @Test func transientFailureDefersWithExponentialBackoffThenDeadLetters() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        var now = Date()
        var delays: [TimeInterval] = []
        for _ in 0..<2 {
            let claim = try #require(try queue.claim(now: now))
            guard
                case .deferred(let until) = try queue.markFailed(
                    claim,
                    error: "451 try later",
                    permanent: false,
                    at: now,
                    policy: policy
                )
            else {
                Issue.record("expected a deferral")
                return
            }
            delays.append(until.timeIntervalSince(now))
            #expect(try queue.claim(now: now) == nil, "a deferred email is not due yet")
            now = until
        }
        #expect(delays == [1, 2])
        let last = try #require(try queue.claim(now: now))
        #expect(last.email.retryCount == 2)
        #expect(last.email.lastError == "451 try later")
        #expect(
            try queue.markFailed(last, error: "451 still", permanent: false, at: now, policy: policy) == .deadLettered
        )
        #expect(dir.names("queue").isEmpty)
        let letterPath = dir.path + "/dead_letter/" + dir.names("dead_letter")[0]
        let letter = try QueueCoding.decoder().decode(
            DeadLetter.self,
            from: Data(contentsOf: URL(fileURLWithPath: letterPath))
        )
        #expect(letter.kind == .retriesExhausted)
        #expect(letter.attempts.map(\.error) == ["451 try later", "451 try later", "451 still"])
        #expect(letter.email.toEmail == "u0@example.com")
    }

    @Test func permanentFailureDeadLettersAtOnce() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        #expect(
            try queue.markFailed(claim, error: "550 no such user", permanent: true, at: Date(), policy: policy)
                == .deadLettered
        )
        #expect(dir.names("dead_letter").count == 1)
        #expect(dir.names("queue").isEmpty)
    }

    @Test func aDeferredEmailDoesNotBlockTheOnesBehindIt() throws {
        let queue = try makeQueue()
        let start = Date()
        try queue.enqueue(queuedEmail(0, at: start))
        try queue.enqueue(queuedEmail(1, at: start.addingTimeInterval(0.001)))
        let first = try #require(try queue.claim(now: start))
        _ = try queue.markFailed(first, error: "421 busy", permanent: false, at: start, policy: policy)
        let second = try #require(try queue.claim(now: start))
        #expect(second.email.toEmail == "u1@example.com")
    }

    @Test(arguments: [
        ("{not json", "invalid_json"), ("", "invalid_json"), ("{\"to_email\": 5}", "invalid_entry"),
        ("{\"request_id\":", "invalid_json"),
    ])
    func badFilesAreSetAsideAndTheRestIsDelivered(_ content: String, _ status: String) throws {
        let queue = try makeQueue()
        let bad = "batch_1000000000000_deadbeef.json"
        try Data(content.utf8).write(to: URL(fileURLWithPath: dir.path + "/queue/" + bad))
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        #expect(claim.email.toEmail == "u0@example.com")
        #expect(dir.names("trash") == [])
        let corrupt = dir.names("corrupt")
        #expect(corrupt.count == 1)
        #expect(corrupt.first?.hasPrefix("batch_1000000000000_deadbeef.processing.json.\(status).") == true)
    }

    @Test func recoveryPutsBackOnlyClaimsWhoseOwnerIsGone() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail(0))
        try queue.enqueue(queuedEmail(1, at: Date().addingTimeInterval(0.002)))
        let held = try #require(try queue.claim(now: Date()))
        let orphan = try #require(try queue.claim(now: Date()))
        orphan.lock?.release()  // what the kernel does when the owner dies
        let restarted = try makeQueue()
        #expect(try restarted.recoverClaims() == 1)
        #expect(dir.names("queue").contains(orphan.name + ".json"))
        #expect(dir.names("queue/active") == [held.name + ".processing.json"])
        let again = try #require(try restarted.claim(now: Date()))
        #expect(again.name == orphan.name)
        try queue.markSent(held, at: Date())
        #expect(dir.names("trash").count == 1)
    }

    @Test func recoveryRemovesOnlyAbandonedTempFiles() throws {
        let queue = try makeQueue()
        try Data("partial".utf8).write(to: URL(fileURLWithPath: dir.path + "/queue/.tmp-batch_1_aaaaaaaa.json"))
        try setModificationTime(".tmp-batch_1_aaaaaaaa.json", secondsAgo: 120)
        try Data("being written".utf8).write(to: URL(fileURLWithPath: dir.path + "/queue/.tmp-batch_2_bbbbbbbb.json"))
        #expect(try queue.recoverClaims() == 0)
        #expect(dir.names("queue") == [".tmp-batch_2_bbbbbbbb.json"])
    }

    @Test func aLiveClaimHeldPastTheTimeoutIsPutBack() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail(0))
        try queue.enqueue(queuedEmail(1, at: Date().addingTimeInterval(0.002)))
        let old = try #require(try queue.claim(now: Date()))
        usleep(300_000)
        let fresh = try #require(try queue.claim(now: Date()))
        // A claim's age is its inode change time, which the claiming rename set.
        let oldClaimed = try #require(Syscall.changeTime(dir.path + "/queue/active/" + old.name + ".processing.json"))
        let freshClaimed = try #require(
            Syscall.changeTime(dir.path + "/queue/active/" + fresh.name + ".processing.json")
        )
        let timeout = freshClaimed.timeIntervalSince(oldClaimed) / 2
        #expect(try queue.recoverClaims(lockedOlderThan: timeout, now: freshClaimed) == 1)
        #expect(dir.names("queue").contains(old.name + ".json"))
        #expect(dir.names("queue/active") == [fresh.name + ".processing.json"])
    }

    @Test func aClaimResetsTheFileAgeSoAnOldEmailIsNotTakenForAStaleClaim() throws {
        let queue = try makeQueue()
        let e = queuedEmail()
        try queue.enqueue(e)
        try setModificationTime(RequestID.fileBaseName(for: e.requestID)! + ".json", secondsAgo: 7200)
        let claim = try #require(try queue.claim(now: Date()))
        #expect(try queue.recoverClaims(lockedOlderThan: 3600) == 0)
        try queue.markSent(claim, at: Date())
    }

    @Test func higherPriorityIsClaimedFirstAndFIFOWithinAPriority() throws {
        let queue = try makeQueue()
        let start = Date()
        let plan = [(0, 3), (1, 2), (2, 1), (3, 2), (4, 1), (5, 3)]
        for (n, priority) in plan {
            try queue.enqueue(queuedEmail(n, at: start.addingTimeInterval(Double(n) / 1000), priority: priority))
        }
        let fresh = try makeQueue()  // reads the directory, not the enqueuer's index
        var order: [String] = []
        while let claim = try fresh.claim(now: Date()) {
            order.append(claim.email.toEmail)
            try fresh.markSent(claim, at: Date())
        }
        #expect(order == ["u2", "u4", "u1", "u3", "u0", "u5"].map { "\($0)@example.com" })
    }

    @Test(arguments: [false, true])
    func aBacklogDeeperThanTheActiveLimitIsClaimedWholeInOrder(notified: Bool) throws {
        let writer = try makeQueue()
        let start = Date()
        for n in 0..<45 {
            let priority = n == 40 ? 1 : 2  // accepted late, past what the index first holds
            try writer.enqueue(queuedEmail(n, at: start.addingTimeInterval(Double(n) / 1000), priority: priority))
        }
        let queue = try FileQueue(layout: QueueLayout(root: dir.path), activeLimit: 10)
        if notified { queue.useChangeNotifications() }
        var order: [Int] = []
        while let claim = try queue.claim(now: Date()) {
            if order.isEmpty { #expect(queue.indexCounts.pending == 44) }  // 9 held, 35 outside
            order.append(Int(claim.email.toEmail.dropFirst().prefix { $0.isNumber })!)
            try queue.markSent(claim, at: Date())
        }
        // Every email once, in the order accepted: the priority-1 email is first among the
        // ones held with it, not ahead of the oldest.
        #expect(order.sorted() == Array(0..<45))
        #expect(order.filter { $0 != 40 } == Array(0..<40) + Array(41..<45))
        #expect(order.firstIndex(of: 40)! < order.firstIndex(of: 39)!)
        #expect(queue.indexCounts.pending == 0)
    }

    @Test func aDueEmailLeftOutBehindAFullIndexOfDeferredOnesIsReached() throws {
        let writer = try makeQueue()
        let start = Date()
        for n in 0..<12 {
            var email = queuedEmail(n, at: start.addingTimeInterval(Double(n) / 1000))
            if n < 10 { email.nextAttemptAt = start.addingTimeInterval(3600) }  // scheduled: an hour
            try writer.enqueue(email)
        }
        let queue = try FileQueue(layout: QueueLayout(root: dir.path), activeLimit: 10)
        queue.useChangeNotifications()
        // The first sweep offers the ten oldest, all scheduled; the next goes on to the due ones.
        var sent: [String] = []
        for _ in 0..<3 {
            if let claim = try queue.claim(now: Date()) {
                sent.append(claim.email.toEmail)
                try queue.markSent(claim, at: Date())
            }
        }
        #expect(sent == ["u10@example.com", "u11@example.com"])
        // The scheduled ones kept their places: due ones are held beside them, not instead.
        #expect(queue.indexCounts == (pending: 10, deferred: 10))
    }

    @Test func scheduledEmailsLeftOutAreClaimedWhenTheirTimeComes() throws {
        let writer = try makeQueue()
        let start = Date()
        for n in 0..<15 {
            var email = queuedEmail(n, at: start.addingTimeInterval(Double(n) / 1000))
            email.nextAttemptAt = start.addingTimeInterval(0.2 + Double(n) / 100)  // the latest 5 left out
            try writer.enqueue(email)
        }
        let queue = try FileQueue(layout: QueueLayout(root: dir.path), activeLimit: 10)
        queue.useChangeNotifications()
        #expect(try queue.claim(now: Date()) == nil)  // none due yet
        #expect(queue.indexCounts == (pending: 15, deferred: 10))
        Thread.sleep(forTimeInterval: 0.4)
        var sent: [String] = []
        while let claim = try queue.claim(now: Date()) {
            sent.append(claim.email.toEmail)
            try queue.markSent(claim, at: Date())
        }
        #expect(sent == (0..<15).map { "u\($0)@example.com" })
    }

    @Test func expiryReachesOldEmailsTheIndexLeftOut() throws {
        let writer = try makeQueue()
        let start = Date()
        for n in 0..<30 {
            try writer.enqueue(queuedEmail(n, at: start.addingTimeInterval(Double(n) / 1000), priority: n < 20 ? 3 : 1))
        }
        let queue = try FileQueue(layout: QueueLayout(root: dir.path), activeLimit: 10)
        queue.useChangeNotifications()
        var expired: [String] = []
        while let claim = try queue.claimExpired(
            createdBefore: Date().addingTimeInterval(60),
            now: Date(),
            skipping: []
        ) {
            expired.append(claim.email.toEmail)
            try queue.markSent(claim, at: Date())
        }
        #expect(expired.sorted() == (0..<30).map { "u\($0)@example.com" }.sorted())
        #expect(expired.prefix(10) == ArraySlice((0..<10).map { "u\($0)@example.com" }))  // the oldest first
    }

    @Test func withNotificationsTheIndexIsTrustedAndArrivalsAreAdded() throws {
        let queue = try makeQueue()
        queue.useChangeNotifications()
        #expect(try queue.claim(now: Date()) == nil)  // first claim reads the (empty) directory
        let other = try makeQueue()
        let e = queuedEmail()
        try other.enqueue(e)
        #expect(try queue.claim(now: Date()) == nil, "no scan per claim: unseen until notified")
        queue.noteChanges(
            [RequestID.fileBaseName(for: e.requestID)! + ".json", ".tmp-x.json", "junk"].map {
                QueueWatcher.Change(name: $0, departed: false)
            }
        )
        #expect(try queue.claim(now: Date())?.email.requestID == e.requestID)
    }

    @Test func pruneTrashDeletesOnlyOldEntries() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        try queue.markSent(try #require(try queue.claim(now: Date())), at: Date())
        #expect(try queue.pruneTrash(olderThan: 3600) == 0)
        #expect(try queue.pruneTrash(olderThan: 7 * 86400, now: Date().addingTimeInterval(8 * 86400)) == 1)
        #expect(dir.names("trash").isEmpty)
    }

    @Test func releaseGivesTheClaimBackUnchanged() throws {
        let queue = try makeQueue()
        let e = queuedEmail()
        try queue.enqueue(e)
        let claim = try #require(try queue.claim(now: Date()))
        try queue.release(claim)
        #expect(sameEmail(try #require(try queue.claim(now: Date())).email, e))
    }
}
