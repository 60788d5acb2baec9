import Foundation

/// The record written to `dead_letter/B.json` when an email will not be attempted again:
/// why, when, every attempt, and the original email, for an operator to inspect or requeue.
public struct DeadLetter: Codable, Equatable, Sendable {
    /// The last failure, e.g. `550 5.1.1 <x@example.com>: mailbox unavailable`.
    public var reason: String
    public var kind: DeadLetterKind
    public var failedAt: Date
    public var attempts: [DeliveryAttempt]
    public var email: QueuedEmail

    public init(reason: String, kind: DeadLetterKind, failedAt: Date, attempts: [DeliveryAttempt], email: QueuedEmail) {
        self.reason = reason
        self.kind = kind
        self.failedAt = failedAt
        self.attempts = attempts
        self.email = email
    }

    enum CodingKeys: String, CodingKey {
        case reason, kind
        case failedAt = "failed_at"
        case attempts, email
    }
}

/// Why an email went to the dead letters, as `DeadLetter.kind` writes it.
public enum DeadLetterKind: String, Codable, Sendable, CaseIterable {
    /// The relay refused it for good (a 5xx to its MAIL, RCPT or DATA), for every recipient left.
    case permanent
    /// `MAX_RETRIES` spent on temporary failures about the email.
    case retriesExhausted = "retries_exhausted"
    /// Undelivered `MAX_QUEUE_LIFETIME` after it was accepted, whatever the cause.
    case expired
}
