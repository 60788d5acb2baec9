/// Quoted-printable body encoding (RFC 2045 §6.7) for text parts.
///
/// Line breaks in the input (CRLF, or a bare LF or CR) become the canonical CRLF hard line
/// break (RFC 2045 §6.7 rule 4); every output line is at most 76 characters, with `=` soft
/// breaks (rule 5). Beyond the RFC's minimum it also encodes, so the text survives any
/// relay: a `.` or an `F` that starts a line (SMTP dot-stuffing, mbox `From ` quoting), and
/// space or tab before a line break (rule 3).
public enum QuotedPrintable {
    /// Encodes UTF-8 `text`; the result is 7-bit ASCII with CRLF line ends.
    public static func encode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + text.utf8.count / 8)
        var lineLength = 0
        let bytes = Array(text.utf8)
        var i = 0

        func emit(_ piece: ArraySlice<UInt8>, nextIsBreak: Bool) {
            // A soft break must leave room for the "=" itself: 75 + "=" = 76.
            let limit = nextIsBreak ? 76 : 75
            if lineLength + piece.count > limit {
                out.append(contentsOf: [0x3D, 0x0D, 0x0A])  // "=\r\n"
                lineLength = 0
            }
            out.append(contentsOf: piece)
            lineLength += piece.count
        }

        while i < bytes.count {
            let byte = bytes[i]
            if byte == 0x0D || byte == 0x0A {  // CR, LF, or CRLF: one hard break
                if byte == 0x0D, i + 1 < bytes.count, bytes[i + 1] == 0x0A { i += 1 }
                out.append(contentsOf: [0x0D, 0x0A])
                lineLength = 0
                i += 1
                continue
            }
            let next = i + 1 < bytes.count ? bytes[i + 1] : 0x0A
            let atLineEnd = next == 0x0D || next == 0x0A
            let mustEncode: Bool
            switch byte {
            case 0x3D: mustEncode = true                         // "="
            case 0x20, 0x09: mustEncode = atLineEnd              // trailing white space
            case 0x2E, 0x46: mustEncode = lineLength == 0        // "." or "F" at line start
            case 0x21...0x7E: mustEncode = false
            default: mustEncode = true                           // controls and 8-bit
            }
            let piece: ArraySlice<UInt8> = mustEncode ? hexEscape(byte)[...] : [byte]
            emit(piece, nextIsBreak: atLineEnd)
            i += 1
        }
        return out
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private static func hexEscape(_ byte: UInt8) -> [UInt8] {
        [0x3D, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]]
    }
}
