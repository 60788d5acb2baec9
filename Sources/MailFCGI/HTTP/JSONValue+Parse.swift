import Core
import Foundation

extension JSONValue {
    /// Parses `bytes` as one JSON document (RFC 8259, checked strictly by `JSONStrictness`).
    /// - Throws: `HTTPError` 422 of type `json_invalid`, as FastAPI answers malformed JSON.
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        // As FastAPI: `loc: ["body", OFFSET]` (where the parser stopped), `input: {}`, and
        // the reason in `ctx.error`.
        func invalid(_ reason: String, at offset: Int? = nil) -> HTTPError {
            HTTPError.validation([FieldError(
                [.key("body")] + (offset.map { [.index($0)] } ?? []), "JSON decode error: \(reason)",
                type: "json_invalid", input: .object([:]), ctx: ["error": .string(reason)])])
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw invalid("the body is not valid UTF-8 (RFC 8259 §8.1)")
        }
        if let (problem, offset) = JSONStrictness.problemAndOffset(bytes) { throw invalid(problem, at: offset) }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw invalid("Expecting value", at: syntaxErrorOffset(bytes))
        }
    }

    /// Where the JSON parser stopped: Foundation's "around character N", or the end for a
    /// document cut short (Python's `json` gives the same offsets in both cases).
    private static func syntaxErrorOffset(_ bytes: [UInt8]) -> Int {
        do {
            _ = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        } catch {
            let text = "\((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? "")"
            if let range = text.range(of: "around character ") {
                return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
            }
        }
        return bytes.count
    }
}
