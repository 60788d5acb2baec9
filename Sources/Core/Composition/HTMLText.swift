import Foundation

/// Text and HTML renderings of each other, for the alternative part a client did not send.
public enum HTMLText {
    /// An HTML rendering of plain `text`, for the text/html part when the client sent text
    /// only: every character that HTML gives meaning (`& < > " '`) escaped, paragraphs
    /// (separated by blank lines) as `<p>`, and other line breaks as `<br>`, so the HTML
    /// part shows the text exactly as the text part does.
    public static func fromPlainText(_ text: String) -> String {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        let paragraphs = normalized.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        return paragraphs.map { paragraph in
            "<p>"
                + paragraph.split(separator: "\n", omittingEmptySubsequences: false).map { escape(String($0)) }
                .joined(separator: "<br>\n") + "</p>"
        }.joined(separator: "\n")
    }

    /// `text` with `&`, `<`, `>`, `"` and `'` as character references (HTML 5 §13.1.4).
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A plain-text rendering of an HTML body, for the text/plain part when only HTML was
    /// given (`SimpleSend`'s multipart): tags removed, block elements and `<br>` as line
    /// breaks, list items as "- ", links as "text (url)", `<script>`/`<style>` dropped,
    /// character references decoded, runs of white space collapsed as a browser would.
    public static func plainText(_ html: String) -> String {
        var out = ""
        var pendingSpace = false
        var i = html.startIndex
        var linkTarget: String? = nil

        func emit(_ text: Substring) {
            for character in text {
                // HTML white space (not &nbsp;, which stays).
                if character == " " || character == "\t" || character == "\n" || character == "\r\n"
                    || character == "\r"
                {
                    pendingSpace = !out.isEmpty && out.last != "\n"
                } else {
                    if pendingSpace { out.append(" ") }
                    pendingSpace = false
                    out.append(character)
                }
            }
        }
        func lineBreak(_ count: Int) {
            pendingSpace = false
            while out.last == " " { out.removeLast() }
            let existing = out.reversed().prefix { $0 == "\n" }.count
            if !out.isEmpty { out += String(repeating: "\n", count: max(0, count - existing)) }
        }

        while i < html.endIndex {
            guard html[i] == "<" else {
                let next = html[i...].firstIndex(of: "<") ?? html.endIndex
                emit(Substring(decodeEntities(html[i..<next])))
                i = next
                continue
            }
            guard let close = html[i...].firstIndex(of: ">") else {
                emit(html[i...])
                break
            }
            let tag = html[html.index(after: i)..<close]
            let name = tag.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber }.lowercased()
            let closing = tag.hasPrefix("/")
            i = html.index(after: close)
            switch name {
            case "script", "style", "head", "title":
                if !closing, let end = html[i...].range(of: "</\(name)", options: .caseInsensitive) {
                    i = html[end.upperBound...].firstIndex(of: ">").map { html.index(after: $0) } ?? html.endIndex
                }
            case "br": lineBreak(1)
            case "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre", "hr":
                lineBreak(2)
            case "tr": lineBreak(1)
            case "td", "th": if closing { pendingSpace = true }
            case "li":
                if !closing {
                    lineBreak(1)
                    out += "- "
                }
            case "a":
                if closing {
                    if let target = linkTarget, !target.isEmpty, !out.hasSuffix(target) { out += " (\(target))" }
                    linkTarget = nil
                } else {
                    linkTarget = attribute("href", in: tag).map { decodeEntities($0[...]) }
                }
            default: break
            }
        }
        while out.last == "\n" || out.last == " " { out.removeLast() }
        return out
    }

    /// The value of attribute `name` in a tag's text, quoted or not.
    private static func attribute(_ name: String, in tag: Substring) -> Substring? {
        guard let range = tag.range(of: name + "=", options: .caseInsensitive) else { return nil }
        var value = tag[range.upperBound...]
        if let quote = value.first, quote == "\"" || quote == "'" {
            value = value.dropFirst()
            return value.prefix { $0 != quote }
        }
        return value.prefix { !$0.isWhitespace && $0 != ">" }
    }

    /// Decodes named (the common ones) and numeric character references.
    static func decodeEntities(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var out = ""
        var rest = text
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            rest = rest[amp...]
            guard let semi = rest.prefix(12).firstIndex(of: ";") else {
                out.append("&")
                rest = rest.dropFirst()
                continue
            }
            let entity = rest[rest.index(after: rest.startIndex)..<semi]
            if let decoded = decode(entity) {
                out.append(decoded)
                rest = rest[rest.index(after: semi)...]
            } else {
                out.append("&")
                rest = rest.dropFirst()
            }
        }
        return out + rest
    }

    private static let named: [Substring: Character] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}",
        "copy": "©", "reg": "®", "hellip": "…", "mdash": "—", "ndash": "–", "euro": "€",
    ]

    private static func decode(_ entity: Substring) -> Character? {
        if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
            return UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map(Character.init)
        }
        if entity.hasPrefix("#") {
            return UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init).map(Character.init)
        }
        return named[entity]
    }
}
