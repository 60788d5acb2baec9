/// What the relay answered about one envelope recipient in one attempt: its reply to
/// `RCPT TO`, or, for an accepted recipient, the reply to the end of the message data.
public struct RecipientReply: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable {
        /// The relay took the message for this recipient (2xx to RCPT and to the data).
        case accepted
        /// A 4xx, or no answer: this recipient may be tried again.
        case deferred
        /// A 5xx: retrying cannot help (RFC 5321 §4.2.1).
        case refused
    }

    public var address: String
    public var status: Status
    /// The SMTP reply code, when the relay gave one.
    public var code: Int?
    /// The relay's reply line (code, enhanced status code and text), when it gave one.
    public var reply: String?

    public init(address: String, status: Status, code: Int? = nil, reply: String? = nil) {
        self.address = address
        self.status = status
        self.code = code
        self.reply = reply
    }
}

/// Why a delivery failed: whose fault it is, whether trying again can help, and whether the
/// relay saw the message at all.
public struct DeliveryError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// 4xx replies, network and TLS errors, authentication: worth trying again later.
        case transient
        /// 5xx to MAIL FROM, RCPT TO or DATA: retrying cannot help (RFC 5321 §4.2.1).
        case permanent
    }

    /// Whose side the failure is on, which decides what it costs the email.
    public enum Scope: String, Codable, Sendable {
        /// The sending side: the relay unreachable, TLS, AUTH, a refused or closing session
        /// (421 at greeting, "too many connections"). Delivery pauses for the whole pool and
        /// the email's retries are not spent (RFC 5321 §4.5.4.1: the site, not the message).
        case sender
        /// This email's transaction: a 4xx or 5xx to its MAIL, RCPT or DATA, or the session
        /// lost once the relay had answered its MAIL FROM. Counts against `MAX_RETRIES`.
        case email
    }

    public var kind: Kind
    public var scope: Scope
    /// The SMTP reply code, when the server gave one.
    public var replyCode: Int?
    /// A human-readable reason, including the server's text when there is one.
    public var message: String
    /// Whether the relay answered any command of this email's transaction (MAIL FROM on):
    /// false when the attempt never reached it (a refused connection, a dead session).
    public var relaySaw: Bool
    /// The replies to each recipient heard before the failure (empty when it came earlier).
    public var recipients: [RecipientReply]
    /// The relay asked for fewer messages a second (a 421 or 454 that says "rate" or "too
    /// many" within the transaction): the pool slows down (`SendRate`); no retry is spent.
    public var rateLimited = false

    public init(
        _ kind: Kind,
        scope: Scope = .email,
        replyCode: Int? = nil,
        relaySaw: Bool = false,
        recipients: [RecipientReply] = [],
        _ message: String
    ) {
        self.kind = kind
        self.scope = scope
        self.replyCode = replyCode
        self.relaySaw = relaySaw
        self.recipients = recipients
        self.message = message
    }

    public var description: String {
        message
    }

    /// Whether a 421, 451 or 454 asks for fewer messages a second: its text has the word
    /// "rate" (or "ratelimit", "rate-limited"...), "throttl..." or "too many" (SES: 454
    /// "Throttling failure: Maximum sending rate exceeded"; Gmail: 421 4.7.28 "unusual rate";
    /// postfix: 421 4.7.0 "Error: too many ..."). Whole words: "migrated" or "generated" is not a rate.
    public static func isRateLimit(code: Int?, reply: String?) -> Bool {
        guard let code, [421, 451, 454].contains(code), let reply else { return false }
        let text = reply.lowercased()
        if text.contains("throttl") || text.contains("too many") { return true }
        let words = text.split { !$0.isLetter }
        return words.contains { $0 == "rate" || $0 == "rates" || $0.hasPrefix("ratelimit") }
    }
}
