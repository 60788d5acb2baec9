import Foundation

/// Header text for RFC 5322 messages: RFC 2047 encoded-words for anything that is not plain
/// printable ASCII, and folding so that no header line exceeds 78 characters where it can
/// be avoided (RFC 5322 §2.1.1, §2.2.3).
public enum HeaderText {
    /// Longest subject accepted, in code points (16 KiB). RFC 5322 §2.1.1 limits a *line* to
    /// 998 octets, not a field: a longer subject is folded over several lines. The limit
    /// only bounds the memory one request can make the composer spend.
    public static let maxSubject = 16 * 1024

    /// Why `text` cannot go into a header (a C0 or C1 control character, DEL, or a Unicode
    /// line or paragraph separator), or nil.
    public static func controlCharacterProblem(_ text: String) -> String? {
        for scalar in text.unicodeScalars
        where scalar.value < 0x20 || scalar.value == 0x7F
            || (0x80...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
        {
            let name = scalar == "\r" ? "CR" : scalar == "\n" ? "LF" : String(format: "U+%04X", scalar.value)
            return "must not contain control characters (found \(name))"
        }
        return nil
    }

    /// Whether `text` can be written as-is in an unstructured header.
    static func isPlainASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } && !text.contains("=?")
    }

    /// Whether plain `text` survives folding and unfolding unchanged: single spaces between
    /// words of at most 77 characters, none at either end (parsers collapse or trim runs of
    /// folding white space, and a longer word cannot be folded within 78 characters).
    static func foldsCleanly(_ text: String) -> Bool {
        !text.hasPrefix(" ") && !text.hasSuffix(" ") && !text.contains("  ")
            && text.split(separator: " ").allSatisfy { $0.utf8.count <= 77 }
    }

    /// An unstructured header (`Subject`), as it follows `name: `, with no line over 78
    /// characters. Plain ASCII that folds cleanly is written as-is, folded at spaces; any
    /// other text becomes UTF-8 "B" encoded-words of at most 75 characters each, which
    /// keep it exactly (RFC 2047 §5 rule 3 and §6).
    public static func unstructured(_ text: String, headerName: String) -> String {
        if text.isEmpty { return "" }
        if isPlainASCII(text), foldsCleanly(text) { return fold(text, firstLineUsed: headerName.count + 2) }
        return encodedWords(text, firstLineUsed: headerName.count + 2).joined(separator: "\r\n ")
    }

    /// A mailbox for an address header (`From`, `To`, `Cc`, `Reply-To`), as it follows
    /// `name: `, folded so that no line exceeds 78 characters where a space allows (an
    /// address itself is never split). The display name is a quoted-string when it is plain
    /// ASCII that folds cleanly (folded at its spaces, which RFC 5322 §3.2.4 allows inside
    /// one), else UTF-8 encoded-words (RFC 2047 §5 rule 3), one fold between any two.
    public static func mailbox(_ address: String, displayName: String?, headerName: String) -> String {
        var tokens: [String] = []
        if let name = displayName, !name.isEmpty {
            if isPlainASCII(name), foldsCleanly(name) {
                let escaped = name.replacingOccurrences(of: "\\", with: "\\\\")
                    .replacingOccurrences(of: "\"", with: "\\\"")
                tokens = "\"\(escaped)\"".split(separator: " ").map(String.init)
            } else {
                tokens = encodedWords(name, firstLineUsed: headerName.count + 2)
            }
            tokens.append("<\(address)>")
        } else {
            tokens = [address]
        }
        return foldTokens(tokens, firstLineUsed: headerName.count + 2)
    }

    /// Joins `tokens` with single spaces, folding (CRLF before the space) where the next
    /// token would take the line past 78 characters.
    public static func foldTokens(_ tokens: [String], firstLineUsed: Int) -> String {
        var out = ""
        var lineLength = firstLineUsed
        for (index, token) in tokens.enumerated() {
            if index > 0 {
                if lineLength + 1 + token.utf8.count > 78 {
                    out += "\r\n"
                    lineLength = 0
                }
                out += " "
                lineLength += 1
            }
            out += token
            lineLength += token.utf8.count
        }
        return out
    }

    /// `=?UTF-8?B?...?=` words split between code points (the "characters" of RFC 2047 §5
    /// for UTF-8), never inside one. Each line holding them stays within 76 characters
    /// (RFC 2047 §2): the first word after `firstLineUsed` characters, the others after the
    /// one space of folding.
    public static func encodedWords(_ text: String, firstLineUsed: Int) -> [String] {
        let prefix = "=?UTF-8?B?"
        let suffix = "?="
        /// UTF-8 bytes that fit in a word of at most `length` characters.
        func capacity(_ length: Int) -> Int { max(3, (length - prefix.count - suffix.count) / 4 * 3) }
        var maxBytes = capacity(76 - firstLineUsed)
        var words: [String] = []
        var chunk: [UInt8] = []
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > maxBytes, !chunk.isEmpty {
                words.append(prefix + Data(chunk).base64EncodedString() + suffix)
                chunk = []
                maxBytes = capacity(75)
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append(prefix + Data(chunk).base64EncodedString() + suffix) }
        return words
    }

    /// Folds ASCII text at spaces so lines stay within 78 characters where a space allows.
    /// Each fold is CRLF inserted before an existing space, so unfolding restores the text.
    static func fold(_ text: String, firstLineUsed: Int) -> String {
        foldTokens(
            text.split(separator: " ", omittingEmptySubsequences: false).map(String.init),
            firstLineUsed: firstLineUsed
        )
    }

    /// An address list (`Cc`), as it follows `name: `: comma-separated mailboxes, one per
    /// line, each folded by the same rule as every other header.
    public static func addressList(
        _ addresses: [String],
        displayNames: [String: String] = [:],
        headerName: String
    ) -> String {
        addresses.enumerated().map { index, address in
            // The first mailbox follows "Cc: "; each further one starts a folded line of its own.
            mailbox(address, displayName: displayNames[address], headerName: index == 0 ? headerName : "")
        }.joined(separator: ",\r\n ")
    }
}
