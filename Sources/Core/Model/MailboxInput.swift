/// An address as a client writes it: bare (`john@example.com`) or name-addr (`John Doe
/// <john@example.com>`, `"Doe, John" <john@example.com>`; RFC 5322 §3.4), which the Python
/// service's clients send. The display name goes into the header, the address into the
/// envelope.
public struct MailboxInput: Equatable, Sendable {
    public var address: String
    public var displayName: String?

    /// Why a string is not one address: a phrase naming what is wrong.
    public struct Failure: Error, Equatable, Sendable {
        public let reason: String
    }

    /// Parses `text`, trimming surrounding white space; the address must pass `Mailbox`.
    public static func parse(_ text: String) -> Result<MailboxInput, Failure> {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") else {
            if looksLikeSeveral(trimmed) { return .failure(several) }
            return Mailbox.problem(trimmed).map { .failure(Failure(reason: $0)) }
                ?? .success(MailboxInput(address: trimmed))
        }
        let address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            .trimmingCharacters(in: .whitespaces)
        var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
        if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
            var unquoted = ""
            var escaped = false
            for character in name.dropFirst().dropLast() {
                if escaped {
                    unquoted.append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else {
                    unquoted.append(character)
                }
            }
            name = unquoted
        } else if name.contains("@") || name.contains(",") || name.contains("<") || name.contains(">") {
            return .failure(several)
        }
        if address.contains("<") || address.contains(">") || looksLikeSeveral(address) { return .failure(several) }
        if let problem = HeaderText.controlCharacterProblem(name) {
            return .failure(Failure(reason: "the display name \(problem)"))
        }
        if let problem = Mailbox.problem(address) { return .failure(Failure(reason: problem)) }
        return .success(MailboxInput(address: address, displayName: name.isEmpty ? nil : name))
    }

    private static let several = Failure(
        reason: "it holds more than one address; send each as its own item of a list"
    )

    /// Two @ signs with a separator between: `a@x.com, b@y.com`, `a@x.com b@y.com`.
    private static func looksLikeSeveral(_ text: String) -> Bool {
        text.filter { $0 == "@" }.count > 1 && text.contains { $0 == "," || $0 == ";" || $0 == " " }
    }
}
