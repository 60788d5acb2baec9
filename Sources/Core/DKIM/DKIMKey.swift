import CCrypto
import Foundation

/// A DKIM private key, read from a PEM file by OpenSSL. Its type chooses the algorithm:
/// RSA keys of at least `minimumRSABits` sign rsa-sha256 (RFC 6376 §3.3.1, RFC 8301 §3.2),
/// Ed25519 keys ed25519-sha256 (RFC 8463). Immutable after loading, so worker threads share it
/// (OpenSSL keys may be used for signing from several threads at once).
public final class DKIMKey: @unchecked Sendable {
    public enum Algorithm: String, Sendable {
        case rsaSHA256 = "rsa-sha256"
        case ed25519SHA256 = "ed25519-sha256"

        /// The DNS record's `k=` tag.
        public var keyType: String { self == .rsaSHA256 ? "rsa" : "ed25519" }
    }

    /// RSA keys shorter than this are refused: RFC 8301 §3.2 forbids 1024-bit signing keys,
    /// and receivers such as Gmail treat short keys as no signature.
    public static let minimumRSABits = 2048

    public let algorithm: Algorithm
    /// The key's size in bits (256 for Ed25519).
    public let bits: Int
    private let key: OpaquePointer

    /// Why a key file cannot be used.
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Reads the PEM private key at `path`.
    /// - Throws: `Problem` when the file cannot be read, holds no private key, or holds one
    ///   of another type (only RSA and Ed25519 sign DKIM) or an RSA key under 2048 bits.
    public init(path: String) throws(Problem) {
        var error = [CChar](repeating: 0, count: 256)
        guard let raw = ccrypto_private_key_load(path, &error, error.count) else {
            let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw Problem(description: "cannot read a PEM private key from \(path): \(reason)")
        }
        let key = OpaquePointer(raw)
        let bits = Int(ccrypto_key_bits(raw))
        switch Int(ccrypto_key_type(raw)) {
        case Int(CCRYPTO_KEY_RSA):
            guard bits >= Self.minimumRSABits else {
                ccrypto_private_key_free(raw)
                throw Problem(
                    description: "\(path) holds a \(bits)-bit RSA key; DKIM needs at least \(Self.minimumRSABits) bits "
                        + "(RFC 8301)"
                )
            }
            algorithm = .rsaSHA256
        case Int(CCRYPTO_KEY_ED25519):
            algorithm = .ed25519SHA256
        default:
            ccrypto_private_key_free(raw)
            throw Problem(description: "\(path) holds neither an RSA nor an Ed25519 private key")
        }
        self.key = key
        self.bits = bits
    }

    deinit { ccrypto_private_key_free(UnsafeMutableRawPointer(key)) }

    /// The public key as the DNS record's `p=` tag holds it, in base64: RSA's
    /// SubjectPublicKeyInfo (RFC 6376 §3.6.1), Ed25519's 32 raw bytes (RFC 8463 §4).
    public var publicKeyBase64: String {
        let raw = UnsafeMutableRawPointer(key)
        let length = Int(ccrypto_public_key(raw, nil, 0))
        precondition(length > 0, "OpenSSL could not encode a public key it loaded")
        var bytes = [UInt8](repeating: 0, count: length)
        _ = ccrypto_public_key(raw, &bytes, bytes.count)
        return Data(bytes).base64EncodedString()
    }

    /// The TXT record's text for `{selector}._domainkey.{domain}` (RFC 6376 §3.6.1).
    public var dnsRecord: String {
        "v=DKIM1; k=\(algorithm.keyType); p=\(publicKeyBase64)"
    }

    /// The signature over `data`: rsa-sha256 signs the data (its SHA-256 is taken inside);
    /// for ed25519-sha256 `data` is already the SHA-256 that RFC 8463 §3 signs.
    /// - Throws: `Problem` when OpenSSL fails (out of memory).
    func sign(_ data: [UInt8]) throws(Problem) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: max(128, bits / 8 + 16))
        var length = signature.count
        let ok = data.withUnsafeBytes { input in
            ccrypto_sign(UnsafeMutableRawPointer(key), input.baseAddress, input.count, &signature, &length)
        }
        guard ok == 1 else { throw Problem(description: "OpenSSL could not make a \(algorithm.rawValue) signature") }
        return Array(signature.prefix(length))
    }
}
