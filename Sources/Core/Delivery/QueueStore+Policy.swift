import Foundation
import MailModel
import Queue

/// What a failed attempt did with an email.
public enum FailureDisposition: Equatable, Sendable {
    /// Back in the queue, not to be attempted before the given time.
    case deferred(until: Date)
    /// Moved to the dead letters.
    case deadLettered
    /// Refused for good to the last pending recipients, received by earlier ones: done.
    case partiallySent
}

extension QueueStore {
    /// Records a failure of the whole transaction, as `DeliveryAgent` does, with `policy`'s
    /// rules: a transient failure with retries left is deferred, a permanent one or the last
    /// retry goes to the dead letters. For tests and tools.
    public func markFailed(
        _ claim: QueueClaim,
        error: String,
        permanent: Bool,
        at date: Date,
        policy: DeliveryPolicy = DeliveryPolicy()
    ) throws -> FailureDisposition {
        var email = claim.email
        let failure = DeliveryError(permanent ? .permanent : .transient, relaySaw: true, error)
        switch policy.decide(&email, result: .failure(failure), at: date) {
        case .retry(let notBefore, _):
            try markFailed(claim, updated: email, decision: .retry(notBefore: notBefore))
            return .deferred(until: notBefore ?? date)
        case .deadLetter(let kind, let reason):
            try markFailed(claim, updated: email, decision: .deadLetter(reason: reason, kind: kind, at: date))
            return .deadLettered
        case .sent:
            try markSent(claim, record: email, at: date)
            return .partiallySent
        }
    }
}
