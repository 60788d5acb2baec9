import Composition
import Foundation
import Logging
import Testing

@testable import Delivery
@testable import MailModel
@testable import Queue

/// The delivery agent on a second `QueueStore` (in memory): nothing in delivery depends on
/// the file queue, and the policy's decisions reach the store as `FailureDecision`s.
@Suite struct QueueSeamTests {
    /// Answers each send with the next scripted reply: nil delivers to everyone.
    final class ScriptedTransport: Transport {
        var replies: [DeliveryError?]
        var refused: Set<String> = []
        private(set) var sent: [OutgoingMessage] = []

        init(_ replies: [DeliveryError?]) { self.replies = replies }

        func send(_ message: OutgoingMessage) throws(DeliveryError) -> [RecipientReply] {
            if !replies.isEmpty, let failure = replies.removeFirst() { throw failure }
            sent.append(message)
            return message.recipients.map { address in
                refused.contains(address)
                    ? RecipientReply(address: address, status: .refused, code: 550, reply: "550 5.1.1 no such user")
                    : RecipientReply(address: address, status: .accepted, code: 250)
            }
        }

        func probe() throws(DeliveryError) {}
        func close() {}
    }

    let store = MemoryQueueStore()
    let composer = MessageComposer(sender: Sender(address: "noreply@example.org", name: nil))

    func agent(_ transport: ScriptedTransport, retries: Int = 2) -> DeliveryAgent {
        DeliveryAgent(
            queue: store,
            composer: composer,
            transport: transport,
            policy: DeliveryPolicy(retry: RetryPolicy(maxRetries: retries, baseDelay: 60)),
            logger: Logger(label: "test")
        )
    }

    @Test func anEmailIsSentThroughTheProtocolAlone() throws {
        let email = queuedEmail()
        try store.enqueue(email)
        let transport = ScriptedTransport([nil])
        let attempt = try #require(try agent(transport).processNext())
        #expect(attempt.outcome == .sent(partial: false) && transport.sent.count == 1)
        #expect(try store.lookup(requestID: email.requestID)?.state == .sent)
        #expect(try agent(transport).processNext() == nil)
    }

    @Test func aTemporaryFailureIsDeferredByThePolicyThenAPermanentOneDeadLettered() throws {
        let email = queuedEmail()
        try store.enqueue(email)
        let transport = ScriptedTransport([
            DeliveryError(.transient, replyCode: 451, relaySaw: true, "451 4.3.0 try later"),
            DeliveryError(.permanent, replyCode: 550, relaySaw: true, "550 5.7.1 refused"),
        ])
        let worker = agent(transport)
        _ = try worker.processNext()
        let deferred = try #require(try store.lookup(requestID: email.requestID))
        #expect(deferred.state == .deferred && deferred.email.retryCount == 1)
        let due = try #require(deferred.email.nextAttemptAt)
        #expect(due > Date().addingTimeInterval(30))  // the policy's backoff, not the store's
        #expect(try worker.processNext() == nil)  // not due yet
        _ = try worker.processNext(now: due.addingTimeInterval(1))
        let letter = try #require(try store.lookup(requestID: email.requestID))
        #expect(letter.state == .deadLetter && letter.deadLetter?.kind == .permanent)
        #expect(letter.email.attempts.map(\.code) == [451, 550])
    }

    @Test func aRecipientRefusedForGoodMakesItPartiallySent() throws {
        var email = queuedEmail()
        email.cc = ["gone@example.com"]
        try store.enqueue(email)
        let transport = ScriptedTransport([nil])
        transport.refused = ["gone@example.com"]
        _ = try agent(transport).processNext()
        let record = try #require(try store.lookup(requestID: email.requestID))
        #expect(record.state == .partiallySent)
        #expect(record.email.recipients?.first { $0.address == "gone@example.com" }?.state == .failed)
    }

    @Test func aCanceledEmailIsNeverClaimedAndAClaimedOneCannotBeCanceled() throws {
        let first = queuedEmail(1)
        let second = queuedEmail(2, at: Date().addingTimeInterval(0.01))
        try store.enqueue(batch: [first, second])
        guard case .canceled = try store.cancel(requestID: first.requestID) else {
            Issue.record("not canceled")
            return
        }
        let claim = try #require(try store.claim(now: Date()))
        #expect(claim.email.requestID == second.requestID)
        guard case .notCancelable(let record) = try store.cancel(requestID: second.requestID) else {
            Issue.record("canceled while claimed")
            return
        }
        #expect(record.state == .sending)
        try store.release(claim)
        #expect(throws: MemoryQueueStore.StaleClaim.self) { try store.release(claim) }  // the token is spent
    }

    /// The keyed-request protocol as the routes use it, on the memory store's keys.
    @Test func idempotencyKeysFollowTheProtocol() throws {
        let queue: any QueueStore = store
        let keys = queue.idempotencyKeys
        guard case .proceed(let reservation, false) = try keys.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record("not proceeding")
            return
        }
        guard case .inProgress = try keys.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record("not held")
            return
        }
        reservation.release()
        guard case .proceed(let resumed, true) = try keys.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record("not resumed")
            return
        }
        #expect(resumed.requestID == reservation.requestID)
        try resumed.finish(answer: [1])
        guard case .replay([1]) = try keys.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record("not replayed")
            return
        }
        guard case .mismatch = try keys.begin(key: "k", user: "u", requestDigest: "other") else {
            Issue.record("another body was not refused")
            return
        }
    }
}
