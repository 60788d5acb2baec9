import CCrypto
import Foundation

/// Signs composed messages for one domain and selector (RFC 6376 §5): relaxed/relaxed
/// canonicalization, the body hash over the whole body, `t=` the signing time, and `h=`
/// naming `signedHeaders` that the message has, From once more than it occurs, so that a
/// From added later breaks the signature (§8.15, over-signing).
public struct DKIMSigner: Sendable {
    /// `d=`: the signing domain, aligned with the From address's (DMARC, RFC 7489 §3.1.1).
    public let domain: String
    /// `s=`: the selector; the public key is at `{selector}._domainkey.{domain}`.
    public let selector: String
    public let key: DKIMKey

    /// The headers signed when present, in this order (lowercase).
    public static let signedHeaders = [
        "from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
        "list-unsubscribe", "list-unsubscribe-post",
    ]

    public init(domain: String, selector: String, key: DKIMKey) {
        self.domain = domain
        self.selector = selector
        self.key = key
    }

    /// Prepends a DKIM-Signature header to `message` (headers, a blank line, the body, all CRLF).
    /// The message's buffer is shifted in place when it has the room (the composer reserves it).
    /// - Throws: `DKIMKey.Problem` when OpenSSL cannot sign.
    public func sign(_ message: inout [UInt8], at time: Date = Date()) throws(DKIMKey.Problem) {
        message.insert(contentsOf: try signatureHeader(for: message, at: time), at: 0)
    }

    /// The `DKIM-Signature: ...` field for `message`, folded, ending in CRLF.
    public func signatureHeader(for message: [UInt8], at time: Date) throws(DKIMKey.Problem) -> [UInt8] {
        let (fields, bodyStart) = Self.headerFields(message)
        let bodyHash = Data(RelaxedCanonicalization.bodyHash(message[bodyStart...])).base64EncodedString()

        // Each signed name as often as it occurs, bottom-up (§5.4.2), and From once more.
        var names: [String] = []
        for name in Self.signedHeaders {
            let count = fields.filter { $0.name == name }.count
            names += Array(repeating: name, count: count + (name == "from" ? 1 : 0))
        }
        let unsigned =
            "v=1; a=\(key.algorithm.rawValue); c=relaxed/relaxed;\r\n d=\(domain); s=\(selector);"
            + " t=\(Int(time.timeIntervalSince1970));\r\n bh=\(bodyHash);\r\n h=" + Self.foldedList(names)
            + ";\r\n b="
        let field = Array("DKIM-Signature: \(unsigned)".utf8)

        var input: [UInt8] = []
        var used: [String: Int] = [:]
        for name in names {
            // The n-th use of a name signs its n-th instance from the bottom; one that is
            // not there signs as nothing (§5.4.2).
            let instances = fields.filter { $0.name == name }
            let seen = used[name, default: 0]
            used[name] = seen + 1
            if seen < instances.count {
                input += RelaxedCanonicalization.header(message[instances[instances.count - 1 - seen].range])
            }
        }
        input += RelaxedCanonicalization.header(field[...], withLineEnd: false)

        let signed: [UInt8]
        switch key.algorithm {
        case .rsaSHA256:
            signed = try key.sign(input)
        case .ed25519SHA256:
            var digest = [UInt8](repeating: 0, count: 32)
            _ = input.withUnsafeBytes { ccrypto_sha256($0.baseAddress, $0.count, &digest) }
            signed = try key.sign(digest)  // RFC 8463 §3: Ed25519 over the SHA-256
        }
        let signature = Data(signed).base64EncodedString()
        var folded = ""
        var index = signature.startIndex
        // b= continues its line, then 72 characters a folded line.
        var width = 75 - " b=".count
        while index < signature.endIndex {
            let end = signature.index(index, offsetBy: width, limitedBy: signature.endIndex) ?? signature.endIndex
            folded += (folded.isEmpty ? "" : "\r\n ") + signature[index..<end]
            index = end
            width = 72
        }
        return field + Array((folded + "\r\n").utf8)
    }

    /// `names` joined by colons, folded (CRLF SP before a colon) to keep lines under 78.
    static func foldedList(_ names: [String]) -> String {
        var out = ""
        var lineLength = 3
        for (index, name) in names.enumerated() {
            let piece = (index == 0 ? "" : ":") + name
            if lineLength + piece.count > 74 {
                out += "\r\n "
                lineLength = 1
            }
            out += piece
            lineLength += piece.count
        }
        return out
    }

    /// The header fields of `message` (name lowercased, byte range with folded lines and the
    /// CRLF) and where the body starts (after the blank line; the end for no body).
    static func headerFields(_ message: [UInt8]) -> (fields: [(name: String, range: Range<Int>)], bodyStart: Int) {
        var fields: [(name: String, range: Range<Int>)] = []
        var start = 0
        var index = 0
        func lineEnd(from i: Int) -> Int? {
            var j = i
            while j + 1 < message.count {
                if message[j] == 0x0D, message[j + 1] == 0x0A { return j + 2 }
                j += 1
            }
            return nil
        }
        while index < message.count {
            if message[index] == 0x0D, index + 1 < message.count, message[index + 1] == 0x0A {
                return (fields, index + 2)  // the blank line: the headers end
            }
            guard let next = lineEnd(from: index) else { break }
            // A line starting with white space continues the field above.
            let continues = next < message.count && (message[next] == 0x20 || message[next] == 0x09)
            if !continues {
                if let colon = message[start..<next].firstIndex(of: 0x3A) {
                    let name = String(decoding: message[start..<colon], as: UTF8.self)
                    fields.append((name.trimmingCharacters(in: .whitespaces).lowercased(), start..<next))
                }
                start = next
            }
            index = next
        }
        return (fields, message.count)
    }
}
