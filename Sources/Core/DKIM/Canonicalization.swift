import CCrypto

/// The "relaxed" canonicalizations of RFC 6376 §3.4.2 and §3.4.4, which survive the
/// re-folding and white-space changes relays make.
public enum RelaxedCanonicalization {
    static func isWhiteSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// One header field (`name:value`, folded lines and final CRLF included) canonicalized:
    /// the name lowercased, the value unfolded, runs of white space made one space, white
    /// space at the value's ends and around the colon removed; ends in CRLF when
    /// `withLineEnd` (the DKIM-Signature field itself is hashed without it, §3.7).
    public static func header(_ field: ArraySlice<UInt8>, withLineEnd: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(field.count)
        guard let colon = field.firstIndex(of: 0x3A) else { return out }
        for byte in field[..<colon] where !isWhiteSpace(byte) {
            out.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte)
        }
        out.append(0x3A)
        var pendingSpace = false
        var started = false
        for byte in field[field.index(after: colon)...] {
            if byte == 0x0D || byte == 0x0A { continue }  // unfolding
            if isWhiteSpace(byte) {
                pendingSpace = started
                continue
            }
            if pendingSpace { out.append(0x20) }
            pendingSpace = false
            started = true
            out.append(byte)
        }
        if withLineEnd { out += [0x0D, 0x0A] }
        return out
    }

    /// The SHA-256 of a body canonicalized (§3.4.4): in each line, runs of white space made one
    /// space and white space before the line end removed; empty lines at the end removed; a
    /// non-empty body ends in CRLF. Hashed line by line, so no canonical copy is made: a line
    /// without white space (every base64 and most quoted-printable lines) is hashed in place.
    public static func bodyHash(_ body: ArraySlice<UInt8>) -> [UInt8] {
        guard let context = ccrypto_sha256_new() else { fatalError("OpenSSL could not start a SHA-256") }
        var emptyLines = 0
        var line: [UInt8] = []
        body.withUnsafeBufferPointer { bytes in
            let crlf: [UInt8] = [0x0D, 0x0A]
            func update(_ piece: UnsafeBufferPointer<UInt8>) {
                _ = ccrypto_sha256_update(context, piece.baseAddress, piece.count)
            }
            func flushEmptyLines() {
                crlf.withUnsafeBufferPointer { for _ in 0..<emptyLines { update($0) } }
                emptyLines = 0
            }
            var start = 0
            while start < bytes.count {
                // The line's end: its CRLF, or the end of a body whose last line has none.
                var end = start
                var hasWhiteSpace = false
                while end < bytes.count, !(bytes[end] == 0x0D && end + 1 < bytes.count && bytes[end + 1] == 0x0A) {
                    if isWhiteSpace(bytes[end]) { hasWhiteSpace = true }
                    end += 1
                }
                let terminated = end < bytes.count
                if !hasWhiteSpace {
                    if end > start {
                        flushEmptyLines()
                        update(UnsafeBufferPointer(rebasing: bytes[start..<end]))
                        crlf.withUnsafeBufferPointer(update)
                    } else if terminated {
                        emptyLines += 1  // held back until a line with text follows
                    }
                } else {
                    line.removeAll(keepingCapacity: true)
                    var pendingSpace = false
                    for byte in bytes[start..<end] {
                        if isWhiteSpace(byte) {
                            pendingSpace = true
                        } else {
                            if pendingSpace { line.append(0x20) }
                            pendingSpace = false
                            line.append(byte)
                        }
                    }
                    if line.isEmpty {
                        emptyLines += 1
                    } else {
                        flushEmptyLines()
                        line += crlf
                        line.withUnsafeBufferPointer(update)
                    }
                }
                start = terminated ? end + 2 : end
            }
        }
        var digest = [UInt8](repeating: 0, count: 32)
        guard ccrypto_sha256_final(context, &digest) == 1 else { fatalError("OpenSSL could not finish a SHA-256") }
        return digest
    }
}
