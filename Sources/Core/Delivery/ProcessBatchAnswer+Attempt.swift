import Foundation
import MailModel
import Status

extension ProcessBatchAnswer {
    /// The answer for one attempt.
    public init(_ attempt: DeliveryAgent.Attempt, at now: Date) {
        let (outcome, message, error, next): (String, String, String?, String?) =
            switch attempt.outcome {
            case .sent(let partial):
                ("sent", partial ? "Email sent to some recipients; refused for the others" : "Email sent", nil, nil)
            case .deferred(let until, let error, let counted):
                (
                    "deferred",
                    counted
                        ? "Delivery failed; will retry"
                        : "Relay unavailable; back in the queue without spending a retry",
                    error, until.map(Timestamp.iso8601)
                )
            case .deadLettered(let error): ("dead_letter", "Delivery failed; moved to dead letters", error, nil)
            }
        self.init(
            processed: true,
            message: message,
            request_id: attempt.requestID,
            file: attempt.file,
            outcome: outcome,
            error: error,
            next_attempt_at: next,
            timestamp: Timestamp.iso8601(now),
            recipients: attempt.recipients.map {
                Recipient(address: $0.address, state: $0.state.rawValue, code: $0.code, reply: $0.reply)
            }
        )
    }
}
