import Foundation
import MailModel

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

        public init(address: String, state: String, code: Int?, reply: String?) {
            self.address = address
            self.state = state
            self.code = code
            self.reply = reply
        }
    }

    /// The answer when nothing was due.
    public static func idle(at now: Date) -> ProcessBatchAnswer {
        ProcessBatchAnswer(processed: false, message: "No email is due", timestamp: Timestamp.iso8601(now))
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
