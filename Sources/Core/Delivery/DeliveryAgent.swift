import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Delivers one queued email at a time: claim, compose, send, record the outcome.
/// Used by each mailworkerd worker thread and by `POST /process-batch`.
///
/// Not thread-safe: each thread has its own agent (and so its own transport connection).
public final class DeliveryAgent {
    public let queue: any QueueStore
    public let composer: MessageComposer
    public let transport: any Transport
    private let logger: Logger

    /// What happened to the email `processNext` claimed.
    public enum Outcome: Equatable, Sendable {
        case sent
        case deferred(until: Date, error: String)
        case deadLettered(error: String)
    }

    /// One attempt: which email, what happened, the delivery error if any, and how long it
    /// took from claim to recorded outcome.
    public struct Attempt: Sendable {
        public let requestID: String
        public let file: String
        public let outcome: Outcome
        public let error: DeliveryError?
        public let seconds: TimeInterval
    }

    /// Told why an outcome cannot be recorded (the disk is full, say) while the agent keeps
    /// retrying, and nil once it could be; for `/health`.
    private let recordingTrouble: @Sendable (String?) -> Void
    /// How long the agent keeps retrying to record one outcome before it gives up and
    /// throws (the claim is then recovered: a sent email may be sent again).
    private let recordingPatience: TimeInterval

    /// - Parameters:
    ///   - recordingPatience: seconds to keep retrying an outcome that cannot be recorded
    ///     (mailworkerd: for ever; a request handler: a few seconds).
    ///   - recordingTrouble: called with the reason while recording fails, nil when it works again.
    public init(
        queue: any QueueStore,
        composer: MessageComposer,
        transport: any Transport,
        logger: Logger,
        recordingPatience: TimeInterval = .infinity,
        recordingTrouble: @escaping @Sendable (String?) -> Void = { _ in }
    ) {
        self.queue = queue
        self.composer = composer
        self.transport = transport
        self.logger = logger
        self.recordingPatience = recordingPatience
        self.recordingTrouble = recordingTrouble
    }

    /// Claims the next due email and attempts it. `onClaim` is told the queue file's name
    /// as soon as it is claimed (for the worker's `current_batch`).
    /// - Returns: nil when nothing is due.
    /// - Throws: `SystemError` when the queue cannot be read or the outcome cannot be
    ///   recorded; the email then stays claimed until its claim is recovered.
    public func processNext(now: Date = Date(), onClaim: (String) -> Void = { _ in }) throws -> Attempt? {
        guard let claim = try queue.claim(now: now) else { return nil }
        let started = Date()
        onClaim(claim.name)
        let (outcome, error) = try deliver(claim)
        return Attempt(
            requestID: claim.email.requestID,
            file: claim.name,
            outcome: outcome,
            error: error,
            seconds: Date().timeIntervalSince(started)
        )
    }

    private func deliver(_ claim: QueueClaim) throws -> (Outcome, DeliveryError?) {
        var log = logger
        log[metadataKey: "request_id"] = "\(claim.email.requestID)"
        let message = composer.compose(claim.email)
        do {
            try transport.send(message)
        } catch {
            let failedAt = Date()
            let disposition = try record("the failed attempt", log) {
                try queue.markFailed(claim, error: error.description, permanent: error.kind == .permanent, at: failedAt)
            }
            switch disposition {
            case .deferred(let until):
                log.warning(
                    "delivery deferred",
                    metadata: [
                        "error": "\(error)", "retry": "\(claim.email.retryCount + 1)",
                        "next_attempt_at": "\(Timestamp.iso8601(until))",
                    ]
                )
                return (.deferred(until: until, error: error.description), error)
            case .deadLettered:
                log.error("delivery failed; moved to dead letters", metadata: ["error": "\(error)"])
                return (.deadLettered(error: error.description), error)
            }
        }
        let sentAt = Date()
        try record("the delivery", log) { try queue.markSent(claim, at: sentAt) }
        log.info(
            "delivered",
            metadata: [
                "message_id": "\(message.messageID)", "recipients": "\(message.recipients.count)",
            ]
        )
        return (.sent, nil)
    }

    /// Runs `body`, which records an outcome in the queue, until it succeeds: the claim stays
    /// locked meanwhile, so an email the relay accepted is not sent again and a deferral is
    /// not retried without its count because the disk was full for a while. Waits 0.25 s
    /// doubling to 5 s between tries, so recording resumes within seconds of space returning.
    /// - Throws: the last error once `recordingPatience` has passed.
    private func record<T>(_ what: String, _ log: Logger, _ body: () throws -> T) throws -> T {
        let started = Date()
        var delay = 0.25
        var failures = 0
        while true {
            do {
                let result = try body()
                if failures > 0 {
                    recordingTrouble(nil)
                    log.notice("recorded \(what) after \(failures) failed tries")
                }
                return result
            } catch QueueError.claimLost(let name) {
                // Taken over by a CLAIM_TIMEOUT sweep: nothing left to record here.
                if failures > 0 { recordingTrouble(nil) }
                throw QueueError.claimLost(name)
            } catch {
                failures += 1
                recordingTrouble("cannot record \(what): \(error)")
                if failures == 1 || failures % 60 == 0 {
                    log.error(
                        "cannot record \(what); the claim is kept and recording retried",
                        metadata: ["error": "\(error)", "tries": "\(failures)"]
                    )
                }
                if Date().timeIntervalSince(started) + delay > recordingPatience { throw error }
                usleep(UInt32(delay * 1_000_000))
                delay = min(5, delay * 2)
            }
        }
    }
}
