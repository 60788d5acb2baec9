import CCrypto

/// HMAC-SHA256 (RFC 2104), computed by OpenSSL's libcrypto: Standard Webhooks signatures.
public enum HMACSHA256 {
    /// The 32-byte MAC of `data` under `key`.
    public static func mac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in ccrypto_hmac_sha256(k.baseAddress, k.count, d.baseAddress, d.count, &out) }
        }
        precondition(ok == 1, "OpenSSL could not compute an HMAC-SHA256")
        return out
    }
}
