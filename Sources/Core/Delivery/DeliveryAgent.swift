import Foundation
import Logging

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

    public init(queue: any QueueStore, composer: MessageComposer, transport: any Transport, logger: Logger) {
        self.queue = queue
        self.composer = composer
        self.transport = transport
        self.logger = logger
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
        return Attempt(requestID: claim.email.requestID, file: claim.name, outcome: outcome, error: error,
                       seconds: Date().timeIntervalSince(started))
    }

    private func deliver(_ claim: QueueClaim) throws -> (Outcome, DeliveryError?) {
        var log = logger
        log[metadataKey: "request_id"] = "\(claim.email.requestID)"
        let message = composer.compose(claim.email)
        do {
            try transport.send(message)
        } catch {
            let disposition = try queue.markFailed(
                claim, error: error.description, permanent: error.kind == .permanent, at: Date())
            switch disposition {
            case .deferred(let until):
                log.warning("delivery deferred", metadata: [
                    "error": "\(error)", "retry": "\(claim.email.retryCount + 1)",
                    "next_attempt_at": "\(Timestamp.iso8601(until))"])
                return (.deferred(until: until, error: error.description), error)
            case .deadLettered:
                log.error("delivery failed; moved to dead letters", metadata: ["error": "\(error)"])
                return (.deadLettered(error: error.description), error)
            }
        }
        try queue.markSent(claim, at: Date())
        log.info("delivered", metadata: [
            "message_id": "\(message.messageID)", "recipients": "\(message.recipients.count)"])
        return (.sent, nil)
    }
}
