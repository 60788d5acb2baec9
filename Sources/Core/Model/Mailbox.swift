/// Address syntax checks for envelope and header addresses: the RFC 5321 §4.1.2 `Mailbox`
/// form `Local-part "@" Domain` with a dot-atom local part, and the §4.5.3.1 size limits
/// (local part 64 octets, domain 255, whole path 256 including the angle brackets).
///
/// Quoted local parts and address literals are refused: they are legal but almost never
/// meant, and refusing them keeps every address safe to write in a header unquoted.
public enum Mailbox {
    /// Whether `address` is a plain `local@domain` mailbox that fits the limits.
    public static func isValid(_ address: String) -> Bool {
        problem(address) == nil
    }

    /// Why `address` is not acceptable, as a phrase (e.g. "the domain is not a valid host
    /// name"), or nil when it is.
    public static func problem(_ address: String) -> String? {
        let bytes = Array(address.utf8)
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "it contains a control character" }
        if bytes.contains(where: { $0 >= 0x80 }) { return "it contains non-ASCII characters" }
        guard let at = address.lastIndex(of: "@") else { return "there is no @" }
        let local = address[..<at]
        let domain = address[address.index(after: at)...]
        if local.isEmpty { return "the part before the @ is empty" }
        if local.utf8.count > 64 { return "the part before the @ is longer than 64 characters" }
        if domain.utf8.count > 255 { return "the domain is longer than 255 characters" }
        if bytes.count + 2 > 256 { return "it is longer than 254 characters" }
        if !isDotAtom(local, allowed: atext) {
            return "the part before the @ has a character or dot that is not allowed"
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        if labels.contains(where: { !isLabel($0) }) { return "the domain is not a valid host name" }
        // A single-label domain cannot be reached on the Internet; localhost is for development.
        if labels.count < 2, domain.lowercased() != "localhost" { return "the domain has no dot" }
        return nil
    }

    /// RFC 5322 §3.2.3 atext.
    private static let atext = Set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~".utf8
    )

    private static func isDotAtom(_ text: Substring, allowed: Set<UInt8>) -> Bool {
        text.split(separator: ".", omittingEmptySubsequences: false)
            .allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy(allowed.contains) }
    }

    /// RFC 5321 §4.1.2 sub-domain: letters, digits and inner hyphens, at most 63 octets.
    private static func isLabel(_ label: Substring) -> Bool {
        guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-" else { return false }
        return label.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D
        }
    }
}
