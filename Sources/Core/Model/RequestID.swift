import Foundation

/// Request ids are UUIDv7 (RFC 9562 §5.7): the first 48 bits are the Unix time in
/// milliseconds, the rest random. The queue file name `batch_{timestamp_ms}_{uuid8}.json` is
/// derived from the id alone (its timestamp and its last eight hex digits), so the id leads
/// to the email's file in any folder without an index.
public enum RequestID {
    /// A new UUIDv7 string (lowercase, hyphenated) for `date`.
    public static func make(at date: Date = Date()) -> String {
        let ms = UInt64(max(0, Timestamp.milliseconds(date)))
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: ms >> (8 * (5 - i))) }
        var random = SystemRandomNumberGenerator()
        for i in 6..<16 { bytes[i] = UInt8.random(in: 0...255, using: &random) }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // variant 10
        let hex = bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        let parts = [
            hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4),
            hex.dropFirst(16).prefix(4), hex.dropFirst(20),
        ]
        return parts.joined(separator: "-")
    }

    /// `count` new ids for `date` whose file base names all differ (ids of one millisecond
    /// share a name when their last 32 bits do), for the emails of one batch.
    public static func distinct(_ count: Int, at date: Date = Date()) -> [String] {
        var ids: [String] = []
        var names: Set<String> = []
        while ids.count < count {
            let id = make(at: date)
            if let name = fileBaseName(for: id), names.insert(name).inserted { ids.append(id) }
        }
        return ids
    }

    /// The queue file's base name (`batch_{timestamp_ms}_{uuid8}`) for a UUIDv7 request id,
    /// or nil if `id` is not a UUIDv7 string.
    public static func fileBaseName(for id: String) -> String? {
        let hex = id.lowercased().filter { $0 != "-" }
        guard id.count == 36, hex.count == 32, hex.allSatisfy(\.isHexDigit),
            hex[hex.index(hex.startIndex, offsetBy: 12)] == "7",
            let ms = UInt64(hex.prefix(12), radix: 16)
        else { return nil }
        return "batch_\(ms)_\(hex.suffix(8))"
    }
}

extension String {
    public func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
