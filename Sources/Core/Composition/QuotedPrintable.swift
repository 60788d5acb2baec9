/// Quoted-printable body encoding (RFC 2045 §6.7) for text parts.
///
/// Line breaks in the input (CRLF, or a bare LF or CR) become the canonical CRLF hard line
/// break (RFC 2045 §6.7 rule 4); every output line is at most 76 characters, the `=` of a
/// soft break included (rule 5). Beyond the RFC's minimum it also encodes, so the text
/// survives any relay: a `.` or an `F` that starts an encoded line, after a hard or a soft
/// break (SMTP dot-stuffing, mbox `From ` quoting), and space or tab at the end of the input or
/// before a line break (rule 3). The escapes of one UTF-8 character stay on one line, so a
/// reader that shows the raw lines never sees half a character.
public enum QuotedPrintable {
    /// Encodes UTF-8 `text`; the result is 7-bit ASCII with CRLF line ends.
    /// - Parameter softBreakAtEnd: end the output in a line break without adding one to the
    ///   text: when `text` does not end in a line break, a final soft break (`=` CRLF)
    ///   follows, and the last line leaves room for it.
    public static func encode(_ text: String, softBreakAtEnd: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + text.utf8.count / 8)
        var lineLength = 0
        let bytes = Array(text.utf8)
        var i = 0

        while i < bytes.count {
            let byte = bytes[i]
            if byte == 0x0D || byte == 0x0A {  // CR, LF, or CRLF: one hard break
                if byte == 0x0D, i + 1 < bytes.count, bytes[i + 1] == 0x0A { i += 1 }
                out.append(contentsOf: [0x0D, 0x0A])
                lineLength = 0
                i += 1
                continue
            }
            let length = characterLength(bytes, at: i)
            let end = i + length
            let atLineEnd = end == bytes.count || bytes[end] == 0x0D || bytes[end] == 0x0A
            // What follows this piece on its line: a hard break (76 characters allowed), or
            // possibly a soft break whose "=" needs the 76th column.
            let hardBreakNext = end < bytes.count ? atLineEnd : !softBreakAtEnd
            let limit = hardBreakNext ? 76 : 75
            var piece = literal(bytes[i..<end], atLineEnd: atLineEnd)
            if lineLength + piece.count > limit {
                out.append(contentsOf: [0x3D, 0x0D, 0x0A])  // "=\r\n"
                lineLength = 0
            }
            if lineLength == 0, byte == 0x2E || byte == 0x46 {  // "." or "F" starting a line
                piece = escaped(bytes[i..<end])
            }
            out.append(contentsOf: piece)
            lineLength += piece.count
            i = end
        }
        if softBreakAtEnd, !bytes.isEmpty, out.last != 0x0A { out.append(contentsOf: [0x3D, 0x0D, 0x0A]) }
        return out
    }

    /// The bytes of the UTF-8 character starting at `i` (1 for ASCII and for stray bytes).
    private static func characterLength(_ bytes: [UInt8], at i: Int) -> Int {
        let lead = bytes[i]
        let expected = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
        var length = 1
        while length < expected, i + length < bytes.count, bytes[i + length] & 0xC0 == 0x80 { length += 1 }
        return length
    }

    /// A character as it is written: itself when printable ASCII that needs no escape, else
    /// its `=XX` escapes.
    private static func literal(_ character: ArraySlice<UInt8>, atLineEnd: Bool) -> [UInt8] {
        guard character.count == 1, let byte = character.first else { return escaped(character) }
        switch byte {
        case 0x3D: return escaped(character)  // "="
        case 0x20, 0x09: return atLineEnd ? escaped(character) : [byte]  // trailing white space
        case 0x21...0x7E: return [byte]
        default: return escaped(character)  // controls and 8-bit
        }
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private static func escaped(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        bytes.flatMap { [0x3D, hexDigits[Int($0 >> 4)], hexDigits[Int($0 & 0x0F)]] }
    }
}
