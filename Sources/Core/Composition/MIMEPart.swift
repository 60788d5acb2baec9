import Foundation
import MailModel

/// One MIME entity (RFC 2045 §2.4) of a message being composed: a leaf with its content and
/// transfer encoding, or a multipart (RFC 2046 §5.1) holding others. The composer builds the
/// tree for an email and `MIMEWriter` writes it, so every shape (text, HTML, alternatives,
/// inline images, attachments) goes through the same encodings and line rules.
public indirect enum MIMEPart: Sendable {
    /// UTF-8 text of `subtype` (`plain`, `html`), quoted-printable (76 columns, dot and
    /// `From ` safe: `QuotedPrintable`).
    case text(String, subtype: String)
    /// A file in base64, wrapped at 76 characters (RFC 2045 §6.8): an attachment, or an
    /// inline part when it has a Content-ID.
    case file(Attachment)
    /// `multipart/{subtype}` (`mixed`, `alternative`, `related`) of `parts`, in order.
    case multipart(subtype: String, parts: [MIMEPart])

    /// The tree for an email's body: the text or HTML, or both as `multipart/alternative`
    /// (text first, RFC 2046 §5.1.4); inline parts beside the HTML in `multipart/related`
    /// (RFC 2387), whose root is the HTML; attachments after all that in `multipart/mixed`.
    /// Inline parts of an email without HTML (the responder refuses them) go with the
    /// attachments, so nothing is dropped.
    public static func body(of email: QueuedEmail) -> MIMEPart {
        let files = email.attachments ?? []
        let inline = files.filter { $0.contentID != nil }
        var attached = files.filter { $0.contentID == nil }
        func related(_ html: String) -> MIMEPart {
            let root = MIMEPart.text(html, subtype: "html")
            return inline.isEmpty ? root : .multipart(subtype: "related", parts: [root] + inline.map(MIMEPart.file))
        }
        var body: MIMEPart
        switch email.format {
        case .plain:
            body = .text(email.body, subtype: "plain")
            attached = inline + attached
        case .html:
            body = related(email.body)
        case .multipart:
            body = .multipart(
                subtype: "alternative",
                parts: [.text(email.body, subtype: "plain"), related(email.htmlBody ?? email.body)]
            )
        }
        if !attached.isEmpty {
            body = .multipart(subtype: "mixed", parts: [body] + attached.map(MIMEPart.file))
        }
        return body
    }
}

/// Writes a `MIMEPart` tree as MIME: each part's headers, a blank line, its body; every line
/// ends in CRLF and is 7-bit. Boundaries are `=_{subtype}{n}_{token}`: `=_` cannot occur in
/// quoted-printable or base64 text (RFC 2045 §6.7, §6.8), and `n` tells nested ones apart.
///
/// In `measuring` mode nothing is stored and `count` adds up what would be written (base64
/// by arithmetic), so the responder can hold an email to `MAX_MESSAGE_BYTES` without
/// composing it.
public struct MIMEWriter {
    public private(set) var out: [UInt8] = []
    public private(set) var count = 0
    let measuring: Bool
    let token: String
    private var boundaries = 0

    /// - Parameter token: makes boundaries unique to the message (its request id's hex digits).
    public init(token: String, measuring: Bool = false, reserving capacity: Int = 0) {
        self.token = token
        self.measuring = measuring
        if !measuring { out.reserveCapacity(capacity) }
    }

    public mutating func emit(_ text: String) {
        count += text.utf8.count
        if !measuring { out.append(contentsOf: text.utf8) }
    }

    mutating func emit(_ bytes: [UInt8]) {
        count += bytes.count
        if !measuring { out.append(contentsOf: bytes) }
    }

    /// Writes `part`: its headers (after any the caller wrote: at the top these follow the
    /// message's own), a blank line and its body, ending in CRLF.
    public mutating func write(_ part: MIMEPart, preamble: Bool = false) {
        switch part {
        case .text(let text, let subtype):
            emit("Content-Type: text/\(subtype); charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
            emit(QuotedPrintable.encode(text, softBreakAtEnd: true))
        case .file(let file):
            emit(Self.fileHeaders(file))
            emit("\r\n")
            writeBase64Lines(file.content)
        case .multipart(let subtype, let parts):
            boundaries += 1
            let boundary = "=_\(subtype.prefix(3))\(boundaries == 1 ? "" : String(boundaries))_\(token)"
            // RFC 2387 §3.1: a multipart/related names its root's type (the HTML, here).
            let root = subtype == "related" ? ";\r\n type=\"text/html\"" : ""
            emit("Content-Type: multipart/\(subtype);\r\n boundary=\"\(boundary)\"\(root)\r\n\r\n")
            if preamble { emit("This is a multi-part message in MIME format.\r\n") }
            for child in parts {
                emit("\r\n--\(boundary)\r\n")
                write(child)
            }
            emit("\r\n--\(boundary)--\r\n")
        }
    }

    /// `base64` (canonical, no line breaks) in lines of 76 characters and CRLF.
    mutating func writeBase64Lines(_ base64: String) {
        let length = base64.utf8.count
        let lines = (length + 75) / 76
        count += length + 2 * lines
        if measuring { return }
        var text = base64
        text.withUTF8 { bytes in
            var start = 0
            while start < bytes.count {
                let end = min(start + 76, bytes.count)
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<end]))
                out.append(0x0D)
                out.append(0x0A)
                start = end
            }
        }
    }

    /// A file part's headers: `Content-Type` with the RFC 2047 `name` old clients read,
    /// `Content-Disposition` with the RFC 2231 `filename` (RFC 2183), the transfer
    /// encoding, and `Content-ID` for an inline part.
    static func fileHeaders(_ file: Attachment) -> String {
        // A type too long for the first line (the Office ones) starts on a folded line of its own.
        let fold = "Content-Type: ".count + file.contentType.utf8.count + 1 > 78 ? "\r\n " : " "
        var headers = "Content-Type:\(fold)\(file.contentType);\r\n name=\(ParameterText.legacyName(file.filename))\r\n"
        headers += "Content-Transfer-Encoding: base64\r\n"
        let disposition = file.contentID == nil ? "attachment" : "inline"
        headers += "Content-Disposition: \(disposition);\r\n \(ParameterText.parameter("filename", file.filename))\r\n"
        if let id = file.contentID { headers += "Content-ID: <\(id)>\r\n" }
        return headers
    }
}

/// MIME header parameter values (RFC 2045 §5.1, RFC 2231).
public enum ParameterText {
    /// `name="value"` when `value` is printable ASCII short enough for one line; otherwise the
    /// RFC 2231 form, percent-encoded UTF-8 (`name*=utf-8''...`), split into numbered sections
    /// (`name*0*=`, `name*1*=`, one per folded line) so no line passes 78 characters.
    public static func parameter(_ name: String, _ value: String) -> String {
        // Text that looks like an encoded-word (`=?`) is never written plain: clients decode
        // encoded-words in parameters, and `=?UTF-8?B?Li4v...?=` would become a path.
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), value.utf8.count + name.count <= 60,
            !value.contains("=?")
        {
            return "\(name)=\(quoted(value))"
        }
        // Each character percent-encoded as a unit, so a section never splits one (some
        // readers decode each section on its own).
        let units = value.unicodeScalars.map { scalar in
            String(scalar).utf8.map { byte in
                attributeCharacters.contains(byte)
                    ? String(Unicode.Scalar(byte)) : "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }.joined()
        }
        let encoded = units.joined()
        if encoded.utf8.count + name.count + "*=utf-8''".count <= 70 { return "\(name)*=utf-8''\(encoded)" }
        // Sections of at most 60 characters.
        var sections: [String] = []
        var current = "utf-8''"
        for unit in units {
            if current.utf8.count + unit.utf8.count > 60, !current.isEmpty {
                sections.append(current)
                current = ""
            }
            current += unit
        }
        if !current.isEmpty { sections.append(current) }
        return sections.enumerated().map { "\(name)*\($0.offset)*=\($0.element)" }.joined(separator: ";\r\n ")
    }

    /// The `name` parameter's value as clients before RFC 2231 read it: a quoted string,
    /// holding RFC 2047 encoded-words (folded between them) when the name is not ASCII or
    /// too long for one line.
    public static func legacyName(_ value: String) -> String {
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), value.utf8.count <= 68, !value.contains("=?") {
            return quoted(value)
        }
        return "\"" + HeaderText.encodedWords(value, firstLineUsed: 7).joined(separator: "\r\n ") + "\""
    }

    /// A quoted-string (RFC 5322 §3.2.4): `"` and `\` escaped.
    static func quoted(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// RFC 5987 §3.2.1 attr-char: what RFC 2231 values may hold unescaped.
    static let attributeCharacters = Set("!#$&+-.^_`|~".utf8).union(Set("0123456789".utf8))
        .union(Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8))
}
