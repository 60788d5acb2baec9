import Foundation
import MailModel

extension JSONValue {
    /// Parses `bytes` as one JSON document (RFC 8259, checked strictly by `JSONStrictness`).
    /// - Throws: `HTTPError` 422 of type `json_invalid` (the reason in `ctx.error`, where in
    /// `loc`), or `missing` for an empty body, as FastAPI answers them.
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        // As FastAPI: `loc: ["body", OFFSET]` (where the parser stopped), `input: {}`, and
        // the reason in `ctx.error`.
        // The offset counts characters, as Python's `json` does, not bytes.
        func invalid(_ reason: String, at offset: Int? = nil) -> HTTPError {
            let position = offset.map { String(decoding: bytes.prefix($0), as: UTF8.self).unicodeScalars.count }
            return HTTPError.validation([
                FieldError(
                    [.key("body")] + (position.map { [.index($0)] } ?? []),
                    "JSON decode error",
                    type: "json_invalid",
                    input: .object([:]),
                    ctx: ["error": .string(reason)]
                )
            ])
        }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            // No body at all: FastAPI reports the body as a missing field.
            throw HTTPError.validation([FieldError([.key("body")], "Field required", type: "missing", input: .null)])
        }
        // Validated in place (no String made of a body that can be megabytes).
        guard (try? UTF8Span(validating: bytes.span)) != nil else {
            throw invalid("the body is not valid UTF-8 (RFC 8259 §8.1)")
        }
        if let (problem, offset) = JSONStrictness.problemAndOffset(bytes) { throw invalid(problem, at: offset) }
        do {
            return try bytes.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return try JSONDecoder().decode(JSONValue.self, from: Data()) }
                // Borrowed, not copied: the Data does not outlive this closure.
                let data = Data(
                    bytesNoCopy: UnsafeMutableRawPointer(mutating: base),
                    count: raw.count,
                    deallocator: .none
                )
                return try JSONDecoder().decode(JSONValue.self, from: data)
            }
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
