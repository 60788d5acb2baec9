/// Something that delivers composed messages: `SMTPTransport` (libcurl) or `FileTransport`.
///
/// One instance is used by one thread at a time (each worker thread owns its own), so an
/// implementation may keep a connection open between messages.
public protocol Transport: AnyObject {
    /// Delivers `message` to every envelope recipient, or throws.
    /// - Throws: `DeliveryError`, classed transient (retry later) or permanent (dead letter).
    func send(_ message: OutgoingMessage) throws(DeliveryError)

    /// Ends any open session cleanly (SMTP `QUIT`). Safe to call more than once.
    func close()
}

/// Why a delivery failed, and whether trying again can help.
public struct DeliveryError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// 4xx replies, network and TLS errors, authentication: the queue retries with backoff.
        case transient
        /// 5xx at MAIL FROM, RCPT TO or DATA: retrying cannot help (RFC 5321 §4.2.1).
        case permanent
    }

    public var kind: Kind
    /// The SMTP reply code, when the server gave one.
    public var replyCode: Int?
    /// A human-readable reason, including the server's text when there is one.
    public var message: String

    public init(_ kind: Kind, replyCode: Int? = nil, _ message: String) {
        self.kind = kind
        self.replyCode = replyCode
        self.message = message
    }

    public var description: String {
        message
    }

    /// Whether the failure is the sending side's (relay unreachable, TLS, timeout, refused
    /// authentication) rather than this message's: it marks the sender unhealthy.
    public var blamesSender: Bool {
        kind == .transient && (replyCode == nil || [421, 454, 530, 534, 535, 538].contains(replyCode!))
    }
}
