import Foundation

/// What happened to an email, reported to the application's webhook (`WEBHOOK_URL`): recorded
/// durably with the state change it reports, then sent, signed, as Standard Webhooks says.
public struct DeliveryEvent: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case sent = "email.sent"
        case partiallySent = "email.partially_sent"
        case deferred = "email.deferred"
        case deadLettered = "email.dead_lettered"
        case canceled = "email.canceled"
        case suppressed = "email.suppressed"
    }

    /// One recipient's outcome in the event.
    public struct Recipient: Codable, Equatable, Sendable {
        public var address: String
        /// `sent`, `failed`, `deferred`, `suppressed`, `canceled`.
        public var state: String
        public var code: Int?
        public var reply: String?

        public init(address: String, state: String, code: Int? = nil, reply: String? = nil) {
            self.address = address
            self.state = state
            self.code = code
            self.reply = reply
        }
    }

    /// Stable across retries of the webhook and a redo after a crash (derived from the email,
    /// the attempt and the type), so receivers de-duplicate on it: `evt_{request id}_{n}_{type}`,
    /// which sorts by the email's acceptance (a UUIDv7), then by `n`: 0 for `email.suppressed`
    /// at acceptance, attempts recorded + 1 for an attempt's event, + 2 for a cancel or an
    /// expiry (after the last attempt's event). `QueuedEmail.attemptTotal` counts every
    /// attempt, so `n` never repeats when only the last 100 are kept.
    public var id: String
    public var type: Kind
    public var createdAt: Date
    public var requestID: String
    public var messageID: String
    public var recipients: [Recipient]
    public var tags: [EmailTag]
    public var submittedBy: String?
    /// The SMTP reply code and text that decided it, when there was one.
    public var code: Int?
    public var reply: String?

    public init(
        type: Kind,
        email: QueuedEmail,
        sequence: Int,
        at: Date,
        recipients: [Recipient],
        code: Int? = nil,
        reply: String? = nil
    ) {
        let suffix = type.rawValue.dropFirst("email.".count)
        id = "evt_\(email.requestID.filter { $0 != "-" })_\(String(sequence).leftPadded(to: 3))_\(suffix)"
        self.type = type
        createdAt = at
        requestID = email.requestID
        messageID = email.messageID
        self.recipients = recipients
        tags = email.tags ?? []
        submittedBy = email.submittedBy
        self.code = code
        self.reply = reply
    }

    enum CodingKeys: String, CodingKey {
        case id, type
        case createdAt = "created_at"
        case requestID = "request_id"
        case messageID = "message_id"
        case recipients, tags
        case submittedBy = "submitted_by"
        case code, reply
    }
}
