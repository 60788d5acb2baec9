import Foundation

/// Header text for RFC 5322 messages: RFC 2047 encoded-words for anything that is not plain
/// printable ASCII, and folding so that no header line exceeds 78 characters where it can
/// be avoided (RFC 5322 §2.1.1, §2.2.3).
public enum HeaderText {
    /// Whether `text` can be written as-is in an unstructured header.
    static func isPlainASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } && !text.contains("=?")
    }

    /// An unstructured header (`Subject`), folded, as it follows `name: `.
    /// Non-ASCII text becomes UTF-8 "B" encoded-words of at most 75 characters each, split
    /// only between whole characters (RFC 2047 §5 rule 3 and §6).
    public static func unstructured(_ text: String, headerName: String) -> String {
        if isPlainASCII(text) { return fold(text, firstLineUsed: headerName.count + 2) }
        return encodedWords(text).joined(separator: "\r\n ")
    }

    /// A display name for an address header: an atom-safe quoted-string when ASCII, else
    /// encoded-words (RFC 2047 §5 rule 3).
    public static func displayName(_ name: String) -> String {
        if isPlainASCII(name) {
            let escaped = name.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        }
        return encodedWords(name).joined(separator: " ")
    }

    /// `=?UTF-8?B?...?=` words, each at most 75 characters.
    static func encodedWords(_ text: String) -> [String] {
        let prefix = "=?UTF-8?B?", suffix = "?="
        // 75 - 12 = 63 characters of base64 → at most 45 bytes of UTF-8 per word.
        let maxBytes = (75 - prefix.count - suffix.count) / 4 * 3
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > maxBytes, !chunk.isEmpty {
                words.append(prefix + Data(chunk).base64EncodedString() + suffix)
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append(prefix + Data(chunk).base64EncodedString() + suffix) }
        return words
    }

    /// Folds ASCII text at spaces so lines stay within 78 characters where a space allows.
    /// Each fold is CRLF inserted before an existing space, so unfolding restores the text.
    static func fold(_ text: String, firstLineUsed: Int) -> String {
        var out = ""
        var lineLength = firstLineUsed
        for (index, word) in text.split(separator: " ", omittingEmptySubsequences: false).enumerated() {
            if index > 0 {
                if lineLength + 1 + word.count > 78, lineLength > 1 {
                    out += "\r\n"
                    lineLength = 0
                }
                out += " "
                lineLength += 1
            }
            out += word
            lineLength += word.count
        }
        return out
    }
}
