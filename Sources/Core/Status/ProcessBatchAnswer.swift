import Foundation

/// The answer to `POST /process-batch` (the Python service's shape, plus `recipients`):
/// written by mailworkerd, which carries the request out, and passed on by mailfcgi.
public struct ProcessBatchAnswer: Codable, Equatable, Sendable {
    public var processed: Bool
    public var message: String
    public var request_id: String?
    public var file: String?
    /// `sent`, `deferred` or `dead_letter`.
    public var outcome: String?
    public var error: String?
    public var next_attempt_at: String?
    public var timestamp: String
    /// Each recipient's outcome (`sent`, `failed`, `deferred`), with the relay's reply.
    public var recipients: [Recipient]?

    public struct Recipient: Codable, Equatable, Sendable {
        public var address: String
        public var state: String
        public var code: Int?
        public var reply: String?
    }

    /// The answer when nothing was due.
    public static func idle(at now: Date) -> ProcessBatchAnswer {
        ProcessBatchAnswer(processed: false, message: "No email is due", timestamp: Timestamp.iso8601(now))
    }

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

    public init(
        processed: Bool,
        message: String,
        request_id: String? = nil,
        file: String? = nil,
        outcome: String? = nil,
        error: String? = nil,
        next_attempt_at: String? = nil,
        timestamp: String,
        recipients: [Recipient]? = nil
    ) {
        self.processed = processed
        self.message = message
        self.request_id = request_id
        self.file = file
        self.outcome = outcome
        self.error = error
        self.next_attempt_at = next_attempt_at
        self.timestamp = timestamp
        self.recipients = recipients
    }

    /// The request line mailfcgi writes to the control socket.
    public static let request = "process-batch"
}
