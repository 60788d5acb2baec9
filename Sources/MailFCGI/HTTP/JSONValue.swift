import Foundation

/// Any JSON value, decoded without losing what kind it was (a `true` is never read as 1,
/// a `2.5` never as 2), so validation can name the exact type error for each field.
enum JSONValue: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// Parses `bytes` as one JSON document (RFC 8259, checked strictly by `JSONStrictness`).
    /// - Throws: `HTTPError` 422 of type `json_invalid`, as FastAPI answers malformed JSON.
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        func invalid(_ reason: String) -> HTTPError {
            HTTPError.validation([FieldError([.key("body")], "JSON decode error: \(reason)", type: "json_invalid")])
        }
        if let problem = JSONStrictness.problem(bytes) { throw invalid(problem) }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch DecodingError.dataCorrupted(let context) {
            let underlying = context.underlyingError.map { "\($0)" } ?? ""
            throw invalid(underlying.isEmpty ? context.debugDescription : underlying)
        } catch {
            throw invalid("\(error)")
        }
    }
}
