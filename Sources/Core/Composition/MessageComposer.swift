import Foundation
import MailModel

/// A message ready for SMTP: the envelope (RFC 5321 §2.3.1) and the content (RFC 5322).
public struct OutgoingMessage: Sendable {
    /// `MAIL FROM` address.
    public var envelopeFrom: String
    /// `RCPT TO` addresses: To, Cc and Bcc, each once, less those an earlier attempt settled.
    public var recipients: [String]
    /// The whole message, headers and body, 7-bit with CRLF line ends.
    public var data: [UInt8]
    /// The `Message-ID` header's value, for logs.
    public var messageID: String
}

/// Turns a `QueuedEmail` into an RFC 5322 message with MIME bodies (RFC 2045, 2046) from a
/// `MIMEPart` tree: text parts in UTF-8 quoted-printable, files in base64, non-ASCII headers
/// as RFC 2047 encoded-words, file names as RFC 2231 parameters.
public struct MessageComposer: Sendable {
    public let sender: Sender

    public init(sender: Sender) {
        self.sender = sender
    }

    /// A new Message-ID on the sender's domain: `<{request id}@{domain}>` (RFC 5322 §3.6.4);
    /// the request id is a UUIDv7, so the left side is unique.
    public func makeMessageID(requestID: String) -> String {
        "<\(requestID)@\(sender.domain)>"
    }

    /// Composes `email`. Does not validate addresses: the responder does that on acceptance.
    /// Every header it writes is folded by `HeaderText` (no line over 78 where a space allows);
    /// the body is the `MIMEPart.body(of:)` tree. The buffer is reserved with room for a
    /// DKIM-Signature, so signing adds it without copying the message.
    public func compose(_ email: QueuedEmail) -> OutgoingMessage {
        var writer = MIMEWriter(token: Self.boundaryToken(email), reserving: composedSize(email) + 1024)
        write(email, to: &writer)
        return OutgoingMessage(
            envelopeFrom: sender.address,
            recipients: email.pendingRecipients,
            data: writer.out,
            messageID: email.messageID
        )
    }

    /// The size in bytes of `compose(email).data`, worked out without composing it: base64
    /// parts are counted, not written (`MAX_MESSAGE_BYTES` is held against this).
    public func composedSize(_ email: QueuedEmail) -> Int {
        var writer = MIMEWriter(token: Self.boundaryToken(email), measuring: true)
        write(email, to: &writer)
        return writer.count
    }

    private func write(_ email: QueuedEmail, to writer: inout MIMEWriter) {
        for (name, value) in headers(email) {
            writer.emit("\(name): \(value)\r\n")
        }
        writer.write(MIMEPart.body(of: email), preamble: true)
    }

    /// The message's own headers, in order: Date, Message-ID, From, To, Cc, Reply-To, Subject,
    /// priority, the client's custom headers, MIME-Version (the body's part headers follow).
    func headers(_ email: QueuedEmail) -> [(String, String)] {
        var headers: [(String, String)] = [
            ("Date", Self.rfc5322Date(email.createdAt)),
            ("Message-ID", email.messageID),
            ("From", HeaderText.mailbox(sender.address, displayName: sender.name, headerName: "From")),
            (
                "To",
                HeaderText.mailbox(email.toEmail, displayName: email.displayNames?[email.toEmail], headerName: "To")
            ),
        ]
        if !email.cc.isEmpty {
            headers.append(
                ("Cc", HeaderText.addressList(email.cc, displayNames: email.displayNames ?? [:], headerName: "Cc"))
            )
        }
        if let replyTo = email.replyTo {
            headers.append(
                (
                    "Reply-To",
                    HeaderText.mailbox(replyTo, displayName: email.displayNames?[replyTo], headerName: "Reply-To")
                )
            )
        }
        headers.append(("Subject", HeaderText.unstructured(email.subject, headerName: "Subject")))
        if email.priority != 2, let level = Self.priorityHeaders[email.priority] {
            headers.append(("X-Priority", level.xPriority))
            headers.append(("Importance", level.importance))
        }
        for header in email.headers ?? [] {
            headers.append((header.name, Self.customValue(header)))
        }
        headers.append(("MIME-Version", "1.0"))
        return headers
    }

    /// A custom header's value, folded: a `List-Unsubscribe` list after its commas (its URIs
    /// must stay whole and unencoded), any other as unstructured text (RFC 2047 when not ASCII).
    static func customValue(_ header: CustomHeader) -> String {
        if header.name.lowercased() == "list-unsubscribe", let uris = CustomHeader.listUnsubscribeURIs(header.value) {
            return HeaderText.foldTokens(
                uris.enumerated().map { "<\($0.element)>" + ($0.offset < uris.count - 1 ? "," : "") },
                firstLineUsed: header.name.count + 2
            )
        }
        return HeaderText.unstructured(header.value, headerName: header.name)
    }

    /// The request id's hex digits, which make the message's boundaries its own.
    static func boundaryToken(_ email: QueuedEmail) -> String {
        email.requestID.filter { $0 != "-" }
    }

    static let priorityHeaders: [Int: (xPriority: String, importance: String)] = [
        1: ("1 (Highest)", "high"),
        3: ("5 (Lowest)", "low"),
    ]

    /// RFC 5322 §3.3 date-time in UTC, e.g. `Mon, 30 Nov 2026 06:26:57 +0000`.
    public static func rfc5322Date(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int?) -> String { String(n ?? 0).leftPadded(to: 2) }
        return "\(days[(c.weekday ?? 1) - 1]), \(two(c.day)) \(months[(c.month ?? 1) - 1]) \(c.year ?? 1970) "
            + "\(two(c.hour)):\(two(c.minute)):\(two(c.second)) +0000"
    }
}
