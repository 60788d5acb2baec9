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

/// Turns a `QueuedEmail` into an RFC 5322 message with MIME bodies (RFC 2045, 2046):
/// text parts in UTF-8 quoted-printable, non-ASCII headers as RFC 2047 encoded-words,
/// `multipart/alternative` for text plus HTML.
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
    /// Every header it writes is folded by `HeaderText` (no line over 78 where a space allows).
    public func compose(_ email: QueuedEmail) -> OutgoingMessage {
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
        headers.append(("MIME-Version", "1.0"))

        var data: [UInt8] = []
        for (name, value) in headers {
            data += Array("\(name): \(value)\r\n".utf8)
        }
        switch email.format {
        case .plain:
            data += Self.textPart(email.body, subtype: "plain")
        case .html:
            data += Self.textPart(email.body, subtype: "html")
        case .multipart:
            let boundary = "=_alt_" + email.requestID.filter { $0 != "-" }
            data += Array("Content-Type: multipart/alternative;\r\n boundary=\"\(boundary)\"\r\n\r\n".utf8)
            data += Array("This is a multi-part message in MIME format.\r\n".utf8)
            for (text, subtype) in [(email.body, "plain"), (email.htmlBody ?? email.body, "html")] {
                data += Array("\r\n--\(boundary)\r\n".utf8)
                data += Self.textPart(text, subtype: subtype)
            }
            data += Array("\r\n--\(boundary)--\r\n".utf8)
        }
        return OutgoingMessage(
            envelopeFrom: sender.address,
            recipients: email.pendingRecipients,
            data: data,
            messageID: email.messageID
        )
    }

    /// Part headers and a quoted-printable body ending in CRLF. Text without a final line
    /// break ends in a soft break (`=` CRLF), so the decoded text has no line break added.
    static func textPart(_ text: String, subtype: String) -> [UInt8] {
        var part = Array(
            "Content-Type: text/\(subtype); charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".utf8
        )
        part += QuotedPrintable.encode(text, softBreakAtEnd: true)
        return part
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
