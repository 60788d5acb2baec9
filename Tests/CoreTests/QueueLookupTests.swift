import Foundation
import Synchronization
import Testing

@testable import Delivery
@testable import MailModel
@testable import Platform
@testable import Queue

/// Lookup by request id in every state, and cancel against claims.
@Suite struct QueueLookupTests {
    let dir = TemporaryDirectory()
    let policy = DeliveryPolicy(retry: RetryPolicy(maxRetries: 1, baseDelay: 60))

    func makeQueue() throws -> FileQueue {
        try FileQueue(layout: QueueLayout(root: dir.path))
    }

    func state(_ queue: FileQueue, _ email: QueuedEmail) throws -> EmailState? {
        try queue.lookup(requestID: email.requestID)?.state
    }

    @Test func everyStateIsFoundFromTheIdAlone() throws {
        let queue = try makeQueue()
        let now = Date()
        var scheduled = queuedEmail(1, at: now)
        scheduled.sendAt = now.addingTimeInterval(60)
        scheduled.nextAttemptAt = scheduled.sendAt
        let queued = queuedEmail(2, at: now.addingTimeInterval(0.001))
        for email in [scheduled, queued] { try queue.enqueue(email) }
        #expect(try state(queue, scheduled) == .scheduled)
        #expect(try state(queue, queued) == .queued)

        let claim = try #require(try queue.claim(now: now.addingTimeInterval(1)))
        #expect(claim.email.requestID == queued.requestID)
        #expect(try state(queue, queued) == .sending)
        var failed = claim.email
        failed.retryCount = 1
        try queue.markFailed(claim, updated: failed, decision: .retry(notBefore: now.addingTimeInterval(60)))
        #expect(try state(queue, queued) == .deferred)
        #expect(try queue.lookup(requestID: queued.requestID)?.email.retryCount == 1)

        // Both due now: the older (the scheduled one) first, FIFO.
        let late = try #require(try queue.claim(now: now.addingTimeInterval(120)))
        #expect(late.email.requestID == scheduled.requestID)
        let decision = FailureDecision.deadLetter(reason: "550 5.1.1 gone", kind: .permanent, at: now)
        try queue.markFailed(late, updated: late.email, decision: decision)
        let letter = try #require(try queue.lookup(requestID: scheduled.requestID))
        #expect(letter.state == .deadLetter && letter.deadLetter?.kind == .permanent)

        let again = try #require(try queue.claim(now: now.addingTimeInterval(120)))
        try queue.markSent(again, at: now)
        #expect(try state(queue, queued) == .sent)
        #expect(try queue.lookup(requestID: queued.requestID)?.finishedAt != nil)
    }

    @Test func aPartialDeliveryIsPartiallySent() throws {
        let queue = try makeQueue()
        var email = queuedEmail()
        email.cc = ["gone@example.com"]
        try queue.enqueue(email)
        let claim = try #require(try queue.claim(now: Date()))
        var record = claim.email
        record.recipients = [
            RecipientOutcome(address: email.toEmail, state: .sent, at: Date()),
            RecipientOutcome(address: "gone@example.com", state: .failed, code: 550, at: Date()),
        ]
        try queue.markSent(claim, record: record, at: Date())
        #expect(try state(queue, email) == .partiallySent)
    }

    @Test func unknownAndCollidingIdsAreNotFound() throws {
        let queue = try makeQueue()
        let email = queuedEmail()
        try queue.enqueue(email)
        #expect(try queue.lookup(requestID: UUID().uuidString) == nil)  // not a UUIDv7
        // Same file name (same millisecond, same last 8 hex digits), another id: not this email.
        var other = Array(email.requestID)
        other[20] = other[20] == "a" ? "b" : "a"
        #expect(try queue.lookup(requestID: String(other)) == nil)
        #expect(try queue.lookup(requestID: email.requestID.uppercased())?.state == .queued)
    }

    @Test func cancelMovesAWaitingEmailToTheTrashAndRefusesTheRest() throws {
        let queue = try makeQueue()
        let email = queuedEmail()
        try queue.enqueue(email)
        guard case .canceled(let record) = try queue.cancel(requestID: email.requestID) else {
            Issue.record("not canceled")
            return
        }
        #expect(record.state == .canceled)
        #expect(dir.names("queue").isEmpty)
        #expect(dir.names("trash") == [RequestID.fileBaseName(for: email.requestID)! + ".canceled.json"])
        #expect(try state(queue, email) == .canceled)
        guard case .notCancelable(let current) = try queue.cancel(requestID: email.requestID) else {
            Issue.record("canceled twice")
            return
        }
        #expect(current.state == .canceled)
        #expect(try queue.claim(now: Date()) == nil)  // the index's stale name is dropped

        let sending = queuedEmail(1)
        try queue.enqueue(sending)
        let claim = try #require(try queue.claim(now: Date()))
        guard case .notCancelable(let busy) = try queue.cancel(requestID: sending.requestID) else {
            Issue.record("canceled while being sent")
            return
        }
        #expect(busy.state == .sending)
        try queue.release(claim)
        guard case .notFound = try queue.cancel(requestID: RequestID.make()) else {
            Issue.record("an unknown id was found")
            return
        }
    }

    /// Claims and cancels of the same emails from many threads: each email is either
    /// claimed or canceled, never both, never neither.
    @Test func cancelRacingClaimsHasExactlyOneWinner() async throws {
        let queue = try makeQueue()
        let emails = (0..<200).map { queuedEmail($0, at: Date().addingTimeInterval(Double($0) / 1000)) }
        for email in emails { try queue.enqueue(email) }
        let claimed = Collected()
        let canceled = Collected()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    while let claim = try? queue.claim(now: Date()) {
                        claimed.add(claim.email.requestID)
                        try? queue.markSent(claim, at: Date())
                    }
                }
            }
            for part in 0..<2 {
                group.addTask {
                    for email in emails.enumerated().filter({ $0.offset % 2 == part }).map(\.element) {
                        if case .canceled = try? queue.cancel(requestID: email.requestID) {
                            canceled.add(email.requestID)
                        }
                    }
                }
            }
        }
        // What the claimants left behind, claimed now.
        while let claim = try queue.claim(now: Date()) {
            claimed.add(claim.email.requestID)
            try queue.markSent(claim, at: Date())
        }
        let (a, c) = (Set(claimed.items), Set(canceled.items))
        #expect(a.isDisjoint(with: c))
        #expect(a.union(c) == Set(emails.map(\.requestID)))
        #expect(claimed.items.count == a.count)
        for email in emails {
            #expect(try state(queue, email) == (c.contains(email.requestID) ? .canceled : .sent))
        }
    }

    /// A worker died after a deferral rewrote the pending file and before it removed its
    /// claim, and the client canceled the rewritten file meanwhile: the cancel stands.
    @Test func recoveryKeepsACancelMadeAfterTheClaim() throws {
        let queue = try makeQueue()
        let email = queuedEmail()
        try queue.enqueue(email)
        let base = RequestID.fileBaseName(for: email.requestID)!
        let claim = try #require(try queue.claim(now: Date()))
        // The deferral's rewrite, as the worker leaves it mid-way: a pending copy beside the claim.
        try FileManager.default.copyItem(
            atPath: dir.path + "/queue/active/\(base).processing.json",
            toPath: dir.path + "/queue/\(base).json"
        )
        guard case .canceled = try queue.cancel(requestID: email.requestID) else {
            Issue.record("not canceled")
            return
        }
        claim.lock?.release()  // the worker dies
        _ = try queue.recoverClaims()
        #expect(dir.entries("queue/active").isEmpty)
        #expect(dir.names("queue").isEmpty)
        #expect(try state(queue, email) == .canceled)
    }

    /// What the watcher reports leaves the index: a canceled scheduled email is no longer
    /// counted, nor waited for.
    @Test func aDepartureSeenByTheWatcherLeavesTheIndex() throws {
        let queue = try makeQueue()
        var email = queuedEmail()
        email.sendAt = Date().addingTimeInterval(600)
        email.nextAttemptAt = email.sendAt
        try queue.enqueue(email)
        #expect(queue.pendingCounts == (1, 1) && queue.nextDue != nil)
        _ = try queue.cancel(requestID: email.requestID)
        let name = RequestID.fileBaseName(for: email.requestID)! + ".json"
        queue.noteChanges([.init(name: name, departed: true)])
        #expect(queue.pendingCounts == (0, 0) && queue.nextDue == nil)
    }

    /// Two ids of one millisecond with the same last 32 bits lead to one file name: the second
    /// is refused, never written over the first.
    @Test func anEmailIsNeverStoredOverAnotherOfTheSameName() throws {
        let queue = try makeQueue()
        let first = queuedEmail(1)
        var chars = Array(first.requestID)
        chars[20] = chars[20] == "a" ? "b" : "a"  // another id, the same file name
        var second = queuedEmail(2)
        second.requestID = String(chars)
        try queue.enqueue(first)
        #expect(throws: QueueError.nameTaken(second.requestID)) { try queue.enqueue(second) }
        #expect(throws: QueueError.nameTaken(second.requestID)) { try queue.enqueue(batch: [queuedEmail(3), second]) }
        #expect(try queue.lookup(requestID: first.requestID)?.email.toEmail == first.toEmail)
        #expect(dir.names("queue").count == 1)
        let ids = RequestID.distinct(500, at: Date())
        #expect(Set(ids.compactMap { RequestID.fileBaseName(for: $0) }).count == 500)
    }
}

/// Ids collected from several tasks.
final class Collected: Sendable {
    private let list = Mutex<[String]>([])
    func add(_ id: String) { list.withLock { $0.append(id) } }
    var items: [String] { list.withLock { $0 } }
}
