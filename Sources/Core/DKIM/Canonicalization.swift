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
    /// non-empty body ends in CRLF. Hashed line by line, so no canonical copy is made.
    public static func bodyHash(_ body: ArraySlice<UInt8>) -> [UInt8] {
        guard let context = ccrypto_sha256_new() else { fatalError("OpenSSL could not start a SHA-256") }
        var emptyLines = 0
        var line: [UInt8] = []
        line.reserveCapacity(1024)
        func update(_ bytes: [UInt8]) {
            _ = bytes.withUnsafeBytes { ccrypto_sha256_update(context, $0.baseAddress, $0.count) }
        }
        func finishLine() {
            while let last = line.last, isWhiteSpace(last) { line.removeLast() }
            if line.isEmpty {
                emptyLines += 1  // held back until a line with text follows
            } else {
                for _ in 0..<emptyLines { update([0x0D, 0x0A]) }
                emptyLines = 0
                line += [0x0D, 0x0A]
                update(line)
            }
            line.removeAll(keepingCapacity: true)
        }
        var index = body.startIndex
        var pendingSpace = false
        while index < body.endIndex {
            let byte = body[index]
            if byte == 0x0D, body.index(after: index) < body.endIndex, body[body.index(after: index)] == 0x0A {
                pendingSpace = false
                finishLine()
                index = body.index(index, offsetBy: 2)
                continue
            }
            if isWhiteSpace(byte) {
                pendingSpace = true
            } else {
                if pendingSpace { line.append(0x20) }
                pendingSpace = false
                line.append(byte)
            }
            index = body.index(after: index)
        }
        if pendingSpace || !line.isEmpty { finishLine() }  // a last line without CRLF gets one
        var digest = [UInt8](repeating: 0, count: 32)
        guard ccrypto_sha256_final(context, &digest) == 1 else { fatalError("OpenSSL could not finish a SHA-256") }
        return digest
    }
}
