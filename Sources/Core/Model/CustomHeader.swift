import Foundation

/// A header the client added (`headers: {name: value}` in the API), written after the ones the
/// composer sets. Names and values are checked by `CustomHeader.problem` on acceptance and
/// again before sending (`QueuedEmail.deliveryProblem`), since a queue file can be edited.
public struct CustomHeader: Codable, Equatable, Sendable {
    public var name: String
    public var value: String

    /// Longest `List-Unsubscribe` URI, which is written on one line.
    public static let maxURILength = 900
    /// Most custom headers on one email.
    public static let maxCount = 50
    /// Longest value, in code points; it is folded over several lines.
    public static let maxValueLength = 4096

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Headers the composer writes or a relay adds, refused so a client cannot give a second
    /// From or break the MIME structure (lowercased; every `content-*` is refused as well).
    public static let structural: Set<String> = [
        "from", "sender", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "received",
        "dkim-signature", "return-path", "reply-to", "x-priority", "importance",
    ]

    /// Why `name` cannot be a custom header's name, or nil: RFC 5322 §3.6.8 `field-name`
    /// (printable ASCII but the colon), at most 76 characters, and not a structural one.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.utf8.count > 76 { return "is longer than 76 characters" }
        guard name.utf8.allSatisfy({ $0 >= 33 && $0 <= 126 && $0 != 0x3A }) else {
            return "must be printable ASCII without spaces or colons (RFC 5322 §3.6.8 field-name)"
        }
        let lower = name.lowercased()
        if structural.contains(lower) || lower.hasPrefix("content-") {
            let why =
                lower == "reply-to"
                ? "use reply_to"
                : lower == "x-priority" || lower == "importance"
                    ? "use priority" : "the service writes it"
            return "\(name) cannot be set as a custom header (\(why))"
        }
        return nil
    }

    /// Why `value` cannot be the value of the header `name`, or nil. `List-Unsubscribe` must be
    /// one or more `<https:...>` or `<mailto:...>` URIs, comma-separated (RFC 2369 §3.2,
    /// RFC 8058 §3.1); `List-Unsubscribe-Post` exactly `List-Unsubscribe=One-Click` (RFC 8058
    /// §3.1); any other value free text without control characters.
    public static func valueProblem(_ value: String, name: String) -> String? {
        if let problem = HeaderText.controlCharacterProblem(value) { return problem }
        if value.unicodeScalars.count > maxValueLength { return "is longer than \(maxValueLength) characters" }
        switch name.lowercased() {
        case "list-unsubscribe":
            return listUnsubscribeProblem(value)
        case "list-unsubscribe-post":
            return value == "List-Unsubscribe=One-Click"
                ? nil : "must be List-Unsubscribe=One-Click (RFC 8058)"
        default:
            return nil
        }
    }

    /// The URIs of a `List-Unsubscribe` value, or nil if it is not a list of `<uri>`.
    public static func listUnsubscribeURIs(_ value: String) -> [String]? {
        var uris: [String] = []
        for item in value.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("<"), trimmed.hasSuffix(">"), trimmed.count > 2 else { return nil }
            uris.append(String(trimmed.dropFirst().dropLast()))
        }
        return uris
    }

    static func listUnsubscribeProblem(_ value: String) -> String? {
        guard let uris = listUnsubscribeURIs(value) else {
            return "must be one or more <https:...> or <mailto:...> URIs in angle brackets, comma-separated"
        }
        for uri in uris {
            // A URI is never folded: its line (the name, the brackets, a comma) must stay under 998.
            guard uri.utf8.count <= maxURILength else {
                return "URI is longer than \(maxURILength) characters"
            }
            guard uri.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3C && $0 != 0x3E && $0 != 0x22 }) else {
                return "URI \(uri) must be printable ASCII without spaces, quotes or angle brackets"
            }
            let lower = uri.lowercased()
            if lower.hasPrefix("mailto:") {
                let address = uri.dropFirst("mailto:".count).prefix { $0 != "?" }
                guard !address.isEmpty, address.contains("@") else { return "URI \(uri) has no address" }
            } else if lower.hasPrefix("https://") {
                guard let url = URL(string: uri), let host = url.host, !host.isEmpty else {
                    return "URI \(uri) is not a valid https URL"
                }
            } else {
                return "URI \(uri) must be https: or mailto:"
            }
        }
        return nil
    }

    /// Why `headers` cannot go together, or nil: a name given twice in another case, or a
    /// `List-Unsubscribe-Post` without an https `List-Unsubscribe` (RFC 8058 §3.1 requires one).
    public static func setProblem(_ headers: [CustomHeader]) -> String? {
        var seen: Set<String> = []
        for header in headers where !seen.insert(header.name.lowercased()).inserted {
            return "\(header.name) is given twice"
        }
        let byName = Dictionary(headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        if byName["list-unsubscribe-post"] != nil {
            let uris = byName["list-unsubscribe"].flatMap(listUnsubscribeURIs) ?? []
            if !uris.contains(where: { $0.lowercased().hasPrefix("https://") }) {
                return "List-Unsubscribe-Post needs a List-Unsubscribe header with an https URI (RFC 8058)"
            }
        }
        return nil
    }
}
