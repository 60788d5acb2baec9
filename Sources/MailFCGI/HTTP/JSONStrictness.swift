/// What RFC 8259 forbids or we refuse that Foundation's JSONDecoder lets through, found in
/// one pass over the raw bytes before decoding: nesting deeper than a limit (deep input
/// makes decoding slow, so it is refused before any decoding work), trailing commas, and
/// a key repeated in one object (parsers disagree on which copy wins, so a filter in front
/// of us could read a different value than we do).
enum JSONStrictness {
    /// Nesting deeper than this is refused; requests and template variables need far less.
    static let maxDepth = 32

    /// The first problem found, as a sentence, or nil.
    static func problem(_ bytes: [UInt8]) -> String? {
        problemAndOffset(bytes)?.problem
    }

    /// The first problem found and the byte offset where it was seen, or nil.
    static func problemAndOffset(_ bytes: [UInt8]) -> (problem: String, offset: Int)? {
        var depth = 0
        var inString = false
        var escaped = false
        var stringStart = 0
        var lastString: ArraySlice<UInt8>? = nil
        var previous: UInt8 = 0  // last byte outside strings that is not white space
        var keys: [Set<ArraySlice<UInt8>>] = []  // per open container; arrays keep theirs empty
        for (i, byte) in bytes.enumerated() {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    lastString = bytes[stringStart..<i]
                }
                continue
            }
            switch byte {
            case UInt8(ascii: " "), 0x09, 0x0A, 0x0D:
                continue
            case UInt8(ascii: "\""):
                inString = true
                stringStart = i + 1
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxDepth { return ("nested deeper than \(maxDepth) levels", i) }
                keys.append([])
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if previous == UInt8(ascii: ",") { return ("trailing comma at byte \(i)", i) }
                depth -= 1
                if !keys.isEmpty { keys.removeLast() }
            case UInt8(ascii: ":"):
                if let key = lastString, previous == UInt8(ascii: "\""), !keys.isEmpty {
                    if !keys[keys.count - 1].insert(key).inserted {
                        return ("duplicate key \"\(String(decoding: key, as: UTF8.self))\"", i)
                    }
                }
            default:
                break
            }
            previous = byte
        }
        return nil
    }
}
