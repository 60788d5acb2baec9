import Foundation

/// The JSON encoder and decoder for queue, dead-letter and status files: ISO 8601 dates with
/// milliseconds (backoff delays start at one second, so whole seconds are too coarse).
public enum QueueCoding {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.iso8601(date))
        }
        return encoder
    }

    /// Decodes `bytes` (a file's contents) without copying them into a `Data` first: queue
    /// files with attachments are megabytes, and every copy is one more in peak memory.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return try decoder().decode(T.self, from: Data()) }
            // The Data only borrows the array's storage, and does not outlive this closure.
            let data = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: raw.count, deallocator: .none)
            return try decoder().decode(T.self, from: data)
        }
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Timestamp.parseISO8601(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription: "not an ISO 8601 timestamp: \(text)"
                )
            }
            return date
        }
        return decoder
    }
}

/// Timestamp formats used in file names and JSON.
public enum Timestamp {
    /// `2026-11-30T06:26:57.123Z`.
    public static func iso8601(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    /// Parses `iso8601(_:)`'s output, with or without fractional seconds, or a date alone
    /// (`2026-11-30`, as a queue file edited by hand may have it), read as midnight UTC.
    public static func parseISO8601(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) {
            return date
        }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        return try? Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day().parse(text)
    }

    /// Milliseconds since the Unix epoch.
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }
}
