import Foundation

/// The record written to `dead_letter/B.json` when an email will not be attempted again:
/// why, when, every attempt, and the original email, for an operator to inspect or requeue.
public struct DeadLetter: Codable, Equatable, Sendable {
    /// The last failure, e.g. `550 5.1.1 <x@example.com>: mailbox unavailable`.
    public var reason: String
    /// `permanent` (the relay refused it), `retries_exhausted` (`MAX_RETRIES` spent on
    /// temporary failures) or `expired` (undelivered after `MAX_QUEUE_LIFETIME`).
    public var kind: String
    public var failedAt: Date
    public var attempts: [DeliveryAttempt]
    public var email: QueuedEmail

    enum CodingKeys: String, CodingKey {
        case reason, kind
        case failedAt = "failed_at"
        case attempts, email
    }
}
