import Foundation

/// An address the service no longer sends to (`GET /suppressions`): added when a relay said
/// for good that the mailbox does not exist or is disabled, or by hand. Repeated hard bounces
/// ruin a sender's reputation, so an email to it is refused (its only recipient) or sent
/// without it (one of several).
public struct Suppression: Codable, Equatable, Sendable {
    public enum Origin: String, Codable, Sendable {
        /// A permanent RCPT failure saying the mailbox does not exist or is disabled.
        case bounce
        /// `POST /suppressions` or `mailctl suppressions add`.
        case manual
    }

    /// As given; compared by `key` (the domain without regard to case).
    public var address: String
    public var origin: Origin
    /// Why: the operator's reason, or the relay's reply for a bounce.
    public var reason: String
    /// The reply code of the bounce, if it was one.
    public var code: Int?
    public var createdAt: Date
    /// When it stops applying (`SUPPRESSION_TTL_DAYS`), or nil for never.
    public var expiresAt: Date?
    /// The email whose bounce added it, if any.
    public var requestID: String?

    public init(
        address: String,
        origin: Origin,
        reason: String,
        code: Int? = nil,
        createdAt: Date,
        expiresAt: Date? = nil,
        requestID: String? = nil
    ) {
        self.address = address
        self.origin = origin
        self.reason = reason
        self.code = code
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.requestID = requestID
    }

    /// The address as suppressions compare it: the local part exact, the domain lowercased.
    public var key: String { QueuedEmail.mailboxKey(address) }

    public func isActive(at now: Date) -> Bool { expiresAt.map { $0 > now } ?? true }

    /// Whether a permanent refusal of a recipient says its mailbox does not exist or is
    /// disabled: enhanced status 5.1.1 (bad destination mailbox), 5.1.10 (null MX / no such
    /// recipient, RFC 7505), 5.2.1 (mailbox disabled) (RFC 3463); or, without an enhanced code,
    /// 550, 551 or 553 whose text says so. Other permanent failures (policy, spam, size) do
    /// not suppress: they say nothing about the mailbox.
    public static func meansNoMailbox(code: Int?, reply: String?) -> Bool {
        guard let code, (500..<600).contains(code) else { return false }
        let text = (reply ?? "").lowercased()
        let words = text.split(whereSeparator: { $0 == " " || $0 == "-" })
        // The enhanced status is the word after the code: "550 5.1.1 ..." or "550-5.1.1 ...".
        if words.count > 1, let enhanced = words.dropFirst().first, enhanced.first == "5", enhanced.contains(".") {
            return ["5.1.1", "5.1.10", "5.2.1"].contains(String(enhanced))
        }
        guard [550, 551, 553].contains(code) else { return false }
        let phrases = [
            "user unknown", "unknown user", "no such user", "does not exist", "mailbox unavailable", "no mailbox",
            "mailbox not found", "recipient not found", "unknown recipient", "invalid recipient", "disabled",
            "no such recipient", "address rejected",
        ]
        return phrases.contains { text.contains($0) }
    }

    enum CodingKeys: String, CodingKey {
        case address, origin, reason, code
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case requestID = "request_id"
    }
}
