import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How to reach the SMTP relay (`SMTP_SERVER`, `PORT`, `SMTP_TLS`, credentials, timeouts).
public struct SMTPSettings: Sendable, Equatable {
    /// TLS for the SMTP session (`SMTP_TLS`).
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Implicit TLS on port 465, otherwise STARTTLS, required: a relay that does not
        /// offer it (or whose offer was stripped on the way) is not used.
        case auto
        /// TLS from the first byte (SMTPS, RFC 8314 §3.3).
        case implicit
        /// STARTTLS (RFC 3207) required: the session fails if the server does not offer it.
        case starttls
        /// Plain text, for a relay on the same host or a trusted network. With a `PASSWORD`,
        /// only a loopback relay is accepted (checked at start).
        case none
    }

    public var host: String
    public var port: Int
    public var tls: TLSMode
    /// AUTH login; nil sends no AUTH.
    public var username: String?
    public var password: String?
    /// A PEM bundle of extra trusted CAs (`SMTP_CA_FILE`).
    public var caFile: String?
    /// Verify the server's certificate and name (`SMTP_TLS_VERIFY`, default true).
    public var verifyCertificate: Bool
    /// Seconds to establish the connection (`SMTP_CONNECT_TIMEOUT`).
    public var connectTimeout: Int
    /// Seconds for one whole send (`SMTP_TIMEOUT`).
    public var timeout: Int

    /// Whether TLS starts with the connection (SMTPS) rather than after STARTTLS.
    public var implicitTLS: Bool {
        tls == .implicit || (tls == .auto && port == 465)
    }

    /// Whether `host` is this machine (`localhost`, 127.0.0.0/8, `::1`): the only place a
    /// password may be sent without TLS.
    public static func isLoopback(_ host: String) -> Bool {
        let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if name == "localhost" || name == "::1" { return true }
        var address = in_addr()
        return inet_pton(AF_INET, name, &address) == 1 && (UInt32(bigEndian: address.s_addr) >> 24) == 127
    }

    public init(
        host: String,
        port: Int,
        tls: TLSMode = .auto,
        username: String? = nil,
        password: String? = nil,
        caFile: String? = nil,
        verifyCertificate: Bool = true,
        connectTimeout: Int = 10,
        timeout: Int = 60
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.caFile = caFile
        self.verifyCertificate = verifyCertificate
        self.connectTimeout = connectTimeout
        self.timeout = timeout
    }
}
