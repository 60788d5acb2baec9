/// The FastCGI 1.0 wire format: record headers, the fixed bodies, and name-value pairs.
/// Section numbers refer to the FastCGI Specification (Open Market, 1996).
enum FastCGI {
    /// `FCGI_VERSION_1`, the only version (§8).
    static let version: UInt8 = 1
    /// Size of a record header (§3.3).
    static let headerLength = 8
    /// Largest content a single record carries: contentLength is 16 bits (§3.3).
    static let maxContentLength = 65_535

    /// Record types (§8).
    enum RecordType: UInt8 {
        case beginRequest = 1
        case abortRequest = 2
        case endRequest = 3
        case params = 4
        case stdin = 5
        case stdout = 6
        case stderr = 7
        case data = 8
        case getValues = 9
        case getValuesResult = 10
        case unknownType = 11
    }

    /// Roles in FCGI_BeginRequestBody (§5.1); we play only the Responder (§6.2).
    static let responderRole: UInt16 = 1
    /// FCGI_KEEP_CONN in FCGI_BeginRequestBody.flags: the application keeps the connection open.
    static let keepConnection: UInt8 = 1

    /// protocolStatus values in FCGI_EndRequestBody (§5.5).
    enum ProtocolStatus: UInt8 {
        case requestComplete = 0
        case cannotMultiplex = 1
        case overloaded = 2
        case unknownRole = 3
    }

    /// A parsed record header (§3.3).
    struct Header: Equatable {
        var type: UInt8
        var requestID: UInt16
        var contentLength: Int
        var paddingLength: Int

        /// Reads the 8 header bytes at `offset`. Returns nil when the version is not 1.
        init?(_ bytes: [UInt8], at offset: Int) {
            guard bytes[offset] == FastCGI.version else { return nil }
            type = bytes[offset + 1]
            requestID = UInt16(bytes[offset + 2]) << 8 | UInt16(bytes[offset + 3])
            contentLength = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            paddingLength = Int(bytes[offset + 6])
        }
    }

    /// Appends one record with `content` (at most 65,535 bytes), padded to a multiple of 8
    /// bytes as §3.3 recommends.
    static func appendRecord(
        _ type: RecordType,
        _ requestID: UInt16,
        _ content: some Collection<UInt8>,
        to out: inout [UInt8]
    ) {
        let length = content.count
        precondition(length <= maxContentLength)
        let padding = (8 - length % 8) % 8
        out += [
            version, type.rawValue, UInt8(requestID >> 8), UInt8(requestID & 0xFF),
            UInt8(length >> 8), UInt8(length & 0xFF), UInt8(padding), 0,
        ]
        out += content
        out += repeatElement(0, count: padding)
    }

    /// Appends `bytes` as a stream (FCGI_STDOUT, §3.3 "stream records"): as many records as
    /// needed, then the empty record that ends the stream.
    static func appendStream(_ type: RecordType, _ requestID: UInt16, _ bytes: [UInt8], to out: inout [UInt8]) {
        var start = 0
        while start < bytes.count {
            let end = min(start + maxContentLength - 7, bytes.count)  // keeps each record 8-aligned
            appendRecord(type, requestID, bytes[start..<end], to: &out)
            start = end
        }
        appendRecord(type, requestID, EmptyCollection(), to: &out)
    }

    /// Appends FCGI_END_REQUEST (§5.5) with appStatus 0.
    static func appendEndRequest(_ requestID: UInt16, _ status: ProtocolStatus, to out: inout [UInt8]) {
        appendRecord(.endRequest, requestID, [0, 0, 0, 0, status.rawValue, 0, 0, 0], to: &out)
    }

    /// Decodes a name-value pair stream (§3.4): each length is one byte below 128, or four
    /// bytes with the high bit set. Returns nil when a length runs past the end.
    static func nameValuePairs(_ bytes: [UInt8]) -> [(name: String, value: String)]? {
        var pairs: [(String, String)] = []
        var i = 0
        func length() -> Int? {
            guard i < bytes.count else { return nil }
            if bytes[i] < 0x80 {
                defer { i += 1 }
                return Int(bytes[i])
            }
            guard i + 4 <= bytes.count else { return nil }
            defer { i += 4 }
            return Int(bytes[i] & 0x7F) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
        }
        while i < bytes.count {
            guard let nameLength = length(), let valueLength = length(),
                nameLength <= bytes.count - i, valueLength <= bytes.count - i - nameLength
            else { return nil }
            let name = String(decoding: bytes[i..<i + nameLength], as: UTF8.self)
            let value = String(decoding: bytes[i + nameLength..<i + nameLength + valueLength], as: UTF8.self)
            pairs.append((name, value))
            i += nameLength + valueLength
        }
        return pairs
    }

    /// Encodes name-value pairs (§3.4), for FCGI_GET_VALUES_RESULT.
    static func encodePairs(_ pairs: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        func appendLength(_ n: Int) {
            if n < 0x80 {
                out.append(UInt8(n))
            } else {
                out += [UInt8(n >> 24 & 0x7F | 0x80), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
            }
        }
        for (name, value) in pairs {
            appendLength(name.utf8.count)
            appendLength(value.utf8.count)
            out += name.utf8
            out += value.utf8
        }
        return out
    }
}
