import Core
import Foundation

extension JSONValue {
    /// Parses `bytes` as one JSON document (RFC 8259, checked strictly by `JSONStrictness`).
    /// - Throws: `HTTPError` 422 of type `json_invalid`, as FastAPI answers malformed JSON.
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        func invalid(_ reason: String) -> HTTPError {
            HTTPError.validation([FieldError([.key("body")], "JSON decode error: \(reason)", type: "json_invalid")])
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw invalid("the body is not valid UTF-8 (RFC 8259 §8.1)")
        }
        if let problem = JSONStrictness.problem(bytes) { throw invalid(problem) }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch DecodingError.dataCorrupted(let context) {
            let underlying = context.underlyingError.map { "\($0)" } ?? ""
            throw invalid(underlying.isEmpty ? context.debugDescription : underlying)
        } catch {
            throw invalid("not a JSON document")  // Swift's own error text means nothing to a client
        }
    }
}
