import Foundation

/// A file carried by an email (`attachments[]` in the API), kept in the queue file as the
/// client sent it: its content stays base64 (RFC 4648 §4) from request to relay, so neither
/// daemon holds a decoded copy beside the encoded one.
///
/// With a `contentID` it is an inline part (`Content-Disposition: inline`, `Content-ID`),
/// which the HTML references as `cid:{contentID}` (RFC 2392); without, an attachment.
public struct Attachment: Codable, Equatable, Sendable {
    /// The file's name as the recipient sees it: any Unicode, no path separators or control
    /// characters (`Attachment.filenameProblem`).
    public var filename: String
    /// An RFC 2045 §5.1 media type, lowercased, with any parameters as given.
    public var contentType: String
    /// `Content-ID` without angle brackets (`logo@example.com`), for an inline part.
    public var contentID: String?
    /// The file's bytes in base64, without line breaks or white space (`Base64Text.canonical`).
    public var content: String

    /// Most attachments on one email (`MAX_ATTACHMENTS`' upper bound).
    public static let maxCount = 100
    /// Longest file name, in UTF-8 bytes (the common file-system limit).
    public static let maxFilenameBytes = 255

    public init(filename: String, contentType: String, contentID: String? = nil, content: String) {
        self.filename = filename
        self.contentType = contentType
        self.contentID = contentID
        self.content = content
    }

    /// The decoded size in bytes.
    public var size: Int { Base64Text.decodedLength(ofCanonical: content) }

    /// Why `name` cannot be an attachment's file name, or nil: empty, longer than
    /// `maxFilenameBytes`, a path (`/` or `\`), `.` or `..`, or holding a control character.
    public static func filenameProblem(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.utf8.count > maxFilenameBytes { return "is longer than \(maxFilenameBytes) bytes" }
        // Bytes, not Characters: "/" followed by a combining mark is one Character that
        // `contains("/")` would not find.
        if name.utf8.contains(0x2F) || name.utf8.contains(0x5C) {
            return "must be a file name, not a path (found a separator)"
        }
        if name == "." || name == ".." { return "must be a file name, not \(name)" }
        return HeaderText.controlCharacterProblem(name)
    }

    /// Why `id` cannot be a `Content-ID`, or nil: RFC 5322 §3.6.4 `id-left "@" id-right`
    /// in dot-atom text, or, as mail clients also send, one dot-atom (`logo.png`). Angle
    /// brackets around it are the caller's to strip.
    public static func contentIDProblem(_ id: String) -> String? {
        if id.isEmpty { return "must not be empty" }
        if id.utf8.count > 250 { return "is longer than 250 characters" }
        let parts = id.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ Self.isDotAtom($0) }) else {
            return "must be dot-atom text with at most one @ (RFC 5322 §3.6.4), e.g. logo@example.com"
        }
        return nil
    }

    /// RFC 5322 §3.2.3 dot-atom-text: atext runs separated by single dots.
    static func isDotAtom(_ text: Substring) -> Bool {
        let atext = Set("!#$%&'*+-/=?^_`{|}~".utf8)
        let runs = text.split(separator: ".", omittingEmptySubsequences: false)
        return runs.allSatisfy { run in
            !run.isEmpty
                && run.utf8.allSatisfy { byte in
                    (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A)
                        || atext.contains(byte)
                }
        }
    }

    enum CodingKeys: String, CodingKey {
        case filename
        case contentType = "content_type"
        case contentID = "content_id"
        case content
    }
}

/// Base64 (RFC 4648 §4) as clients send it: checked and measured without decoding.
public enum Base64Text {
    /// `text` without its white space (RFC 2045 §6.8 lets encoders break lines), or nil when
    /// it is not base64: a character outside the alphabet, a length that is not a multiple of
    /// four, padding anywhere but the end, or non-zero bits in the last character before
    /// padding (which would decode the same as another text: not canonical, RFC 4648 §3.5).
    public static func canonical(_ text: String) -> String? {
        var text = text
        // Scanned in place: the content can be megabytes, and this runs at every claim too.
        let valid = text.withUTF8 { bytes -> Bool? in
            bytes.contains(where: isWhiteSpace) ? nil : isCanonical(bytes)
        }
        if let valid { return valid ? text : nil }
        let stripped = text.utf8.filter { !isWhiteSpace($0) }
        return stripped.withUnsafeBufferPointer(isCanonical) ? String(decoding: stripped, as: UTF8.self) : nil
    }

    static func isWhiteSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }

    /// Whether `bytes`, without white space, are canonical base64.
    static func isCanonical(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count % 4 == 0 else { return false }
        var padding = 0
        if bytes.last == 0x3D { padding = bytes.count >= 2 && bytes[bytes.count - 2] == 0x3D ? 2 : 1 }
        let dataEnd = bytes.count - padding
        // `=` has no value, so padding anywhere before the end fails here.
        for index in 0..<dataEnd where value(bytes[index]) == nil { return false }
        if padding > 0, dataEnd > 0, let last = value(bytes[dataEnd - 1]) {
            // One padding character: the last data character carries 2 spare bits; two: 4.
            let spareBits: UInt8 = padding == 1 ? 0b11 : 0b1111
            if last & spareBits != 0 { return false }
        }
        return true
    }

    /// The number of bytes `canonical` (a `canonical(_:)` result) decodes to.
    public static func decodedLength(ofCanonical canonical: String) -> Int {
        let utf8 = canonical.utf8
        var padding = 0
        if utf8.last == 0x3D { padding = 1 }
        if utf8.count >= 2, utf8[utf8.index(utf8.endIndex, offsetBy: -2)] == 0x3D { padding = 2 }
        return utf8.count / 4 * 3 - padding
    }

    /// A base64 alphabet character's 6-bit value, or nil.
    static func value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x41...0x5A: return byte - 0x41
        case 0x61...0x7A: return byte - 0x61 + 26
        case 0x30...0x39: return byte - 0x30 + 52
        case 0x2B: return 62
        case 0x2F: return 63
        default: return nil
        }
    }
}

/// Media types (RFC 2045 §5.1, RFC 6838 §4.2) for attachments: checked, or guessed from a
/// file name's extension.
public enum MediaType {
    /// The type lowercased with its parameters as given (`text/csv; charset=utf-8`), or why
    /// `text` is not one. `multipart/*` and `message/*` are refused: RFC 2045 §6.4 and RFC 2046
    /// §5.2.1 forbid the base64 that every attachment is sent in.
    public static func checked(_ text: String) -> Result<String, MediaTypeProblem> {
        // A media type is one header line's worth at most: an unfoldable line must stay under 998.
        guard text.utf8.count <= maxLength else {
            return .failure(MediaTypeProblem("is longer than \(maxLength) characters"))
        }
        let pieces = text.split(separator: ";", omittingEmptySubsequences: false)
        let essence = pieces[0].trimmingCharacters(in: .whitespaces).lowercased()
        let halves = essence.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2, halves.allSatisfy({ isToken($0) && $0.utf8.count <= 127 }) else {
            return .failure(MediaTypeProblem("must be type/subtype (RFC 2045 §5.1), e.g. application/pdf"))
        }
        if halves[0] == "multipart" || halves[0] == "message" {
            return .failure(MediaTypeProblem("\(halves[0])/* cannot be sent as a base64 attachment"))
        }
        var parameters: [String] = []
        for piece in pieces.dropFirst() {
            let parameter = piece.trimmingCharacters(in: .whitespaces)
            guard let equals = parameter.firstIndex(of: "="), isToken(parameter[..<equals]) else {
                return .failure(MediaTypeProblem("parameter \"\(parameter)\" is not attribute=value"))
            }
            let attribute = parameter[..<equals].lowercased()
            if attribute == "name" || attribute.hasPrefix("name*") || attribute.hasPrefix("filename") {
                return .failure(
                    MediaTypeProblem("must not carry a \(attribute) parameter: the file name is filename's")
                )
            }
            let value = parameter[parameter.index(after: equals)...]
            guard isToken(value) || isQuotedString(value) else {
                return .failure(
                    MediaTypeProblem("parameter \"\(parameter)\" has a value that is neither a token nor quoted")
                )
            }
            parameters.append(parameter)
        }
        return .success(([essence] + parameters).joined(separator: "; "))
    }

    /// The longest media type accepted, parameters included.
    public static let maxLength = 200

    /// The media type for `filename`'s extension from `byExtension`, else
    /// `application/octet-stream`.
    public static func guessed(forFilename filename: String) -> String {
        guard let dot = filename.lastIndex(of: "."), dot != filename.startIndex else {
            return "application/octet-stream"
        }
        return byExtension[filename[filename.index(after: dot)...].lowercased()] ?? "application/octet-stream"
    }

    /// The extensions transactional mail carries, with their registered types (IANA media
    /// types registry; the Office types as Microsoft registers them).
    public static let byExtension: [String: String] = [
        "pdf": "application/pdf", "zip": "application/zip", "gz": "application/gzip",
        "json": "application/json", "xml": "application/xml", "ics": "text/calendar",
        "txt": "text/plain", "csv": "text/csv", "htm": "text/html", "html": "text/html",
        "md": "text/markdown", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
        "gif": "image/gif", "webp": "image/webp", "svg": "image/svg+xml", "bmp": "image/bmp",
        "ico": "image/vnd.microsoft.icon", "tif": "image/tiff", "tiff": "image/tiff",
        "mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "mp4": "video/mp4",
        "webm": "video/webm", "doc": "application/msword", "xls": "application/vnd.ms-excel",
        "ppt": "application/vnd.ms-powerpoint",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt": "application/vnd.oasis.opendocument.text",
        "ods": "application/vnd.oasis.opendocument.spreadsheet",
        "rtf": "application/rtf", "eml": "application/octet-stream", "pkpass": "application/vnd.apple.pkpass",
    ]

    /// RFC 2045 §5.1 token: printable ASCII except SPACE and tspecials.
    static func isToken(_ text: Substring) -> Bool {
        let tspecials = Set("()<>@,;:\\\"/[]?=".utf8)
        return !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && !tspecials.contains($0) }
    }

    /// RFC 5322 §3.2.4 quoted-string of printable ASCII, with `\` escapes.
    static func isQuotedString(_ text: Substring) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, bytes.first == 0x22, bytes.last == 0x22 else { return false }
        var index = 1
        while index < bytes.count - 1 {
            let byte = bytes[index]
            guard byte >= 0x20, byte < 0x7F else { return false }
            if byte == 0x5C {
                index += 2
                continue
            }
            if byte == 0x22 { return false }
            index += 1
        }
        return index == bytes.count - 1
    }
}

extension Result where Failure == MediaTypeProblem {
    /// The reason, if this is a failure.
    public var failureReason: String? {
        if case .failure(let problem) = self { return problem.reason }
        return nil
    }
}

/// Why a media type was refused.
public struct MediaTypeProblem: Error, Equatable, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}
