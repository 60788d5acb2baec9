/// Who the messages are from: `SENDER_EMAIL` and the optional `SENDER_NAME`.
public struct Sender: Sendable, Equatable {
    /// The address for the `From` header and the envelope's `MAIL FROM`.
    public var address: String
    /// An optional display name for the `From` header.
    public var name: String?

    public init(address: String, name: String? = nil) {
        self.address = address
        self.name = name
    }

    /// The part after the last "@", for Message-IDs (RFC 5322 §3.6.4 suggests the
    /// sender's domain as the right-hand side).
    public var domain: String {
        guard let at = address.lastIndex(of: "@") else { return "localhost" }
        let domain = address[address.index(after: at)...]
        return domain.isEmpty ? "localhost" : String(domain)
    }
}
