import Foundation
import MailModel

/// The fields that shape the message beyond its text: `attachments` and `headers`.
extension FieldReader {
    /// `attachments`: at most `maxCount` objects `{filename, content, content_type?,
    /// content_id?}`, each problem located at its item and key. `content` must be base64;
    /// `content_type` a media type, or guessed from the file name; `content_id` (angle
    /// brackets optional) makes the item an inline part, and two items may not share one.
    mutating func attachments(_ name: String, maxCount: Int) -> [Attachment] {
        guard let value = object[name], value != .null else { return [] }
        guard case .array(let items) = value else {
            errors.append(.body(name, "Input should be a valid list", type: "list_type", input: value))
            return []
        }
        if items.count > maxCount {
            errors.append(
                .body(
                    name,
                    "List should have at most \(maxCount) items (MAX_ATTACHMENTS), not \(items.count)",
                    type: "too_long",
                    ctx: ["max_length": .int(maxCount), "actual_length": .int(items.count)]
                )
            )
            return []
        }
        var attachments: [Attachment] = []
        var contentIDs: Set<String> = []
        for (index, item) in items.enumerated() {
            guard case .object(let members) = item else {
                errors.append(
                    .body(name, index: index, "Input should be a valid dictionary", type: "dict_type", input: item)
                )
                continue
            }
            let before = errors.count
            func refuse(_ key: String, _ message: String, type: String = "value_error", input: JSONValue?) {
                errors.append(
                    FieldError([.key("body"), .key(name), .index(index), .key(key)], message, type: type, input: input)
                )
            }
            func text(_ key: String, required: Bool) -> String? {
                switch members[key] {
                case .string(let text)?: return text
                case nil, .null?:
                    if required { refuse(key, "Field required", type: "missing", input: item) }
                    return nil
                case let other?:
                    refuse(key, "Input should be a valid string", type: "string_type", input: other)
                    return nil
                }
            }
            let filename = text("filename", required: true)
            if let filename, let problem = Attachment.filenameProblem(filename) {
                refuse("filename", "File name \(problem)", input: .string(filename))
            }
            // The content is not echoed back in errors: it can be megabytes.
            let content = text("content", required: true).flatMap { encoded -> String? in
                guard let canonical = Base64Text.canonical(encoded) else {
                    refuse(
                        "content",
                        "Content must be base64 (RFC 4648 §4)" + Self.base64Hint(encoded),
                        type: "base64_decode",
                        input: nil
                    )
                    return nil
                }
                return canonical
            }
            var contentType: String?
            if let given = text("content_type", required: false) {
                switch MediaType.checked(given) {
                case .success(let type): contentType = type
                case .failure(let problem):
                    refuse("content_type", "Content type \(problem.reason)", input: .string(given))
                }
            }
            var contentID: String?
            if let given = text("content_id", required: false) {
                let bare = given.hasPrefix("<") && given.hasSuffix(">") ? String(given.dropFirst().dropLast()) : given
                if let problem = Attachment.contentIDProblem(bare) {
                    refuse("content_id", "Content-ID \(problem)", input: .string(given))
                } else if !contentIDs.insert(bare.lowercased()).inserted {
                    refuse("content_id", "Content-ID \(bare) is given to two attachments", input: .string(given))
                } else {
                    contentID = bare
                }
            }
            guard errors.count == before, let filename, let content else { continue }
            attachments.append(
                Attachment(
                    filename: filename,
                    contentType: contentType ?? MediaType.guessed(forFilename: filename),
                    contentID: contentID,
                    content: content
                )
            )
        }
        return attachments
    }

    /// What most likely made `text` not base64, for the error message.
    static func base64Hint(_ text: String) -> String {
        if text.hasPrefix("data:") { return ": remove the data: URL prefix, up to and including the comma" }
        if text.contains("-") || text.contains("_") {
            return ": use standard base64 (+ and /), not base64url (- and _)"
        }
        let stripped = text.filter { !$0.isWhitespace }
        if stripped.count % 4 != 0 {
            return ": its length (\(stripped.count) characters) is not a multiple of 4 (padding missing?)"
        }
        if let bad = stripped.first(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || "+/=".contains($0))) }) {
            return ": \"\(bad)\" is not a base64 character"
        }
        return ": the padding or its last character is wrong"
    }

    /// `headers`: an object of header names to string values, each checked by
    /// `CustomHeader` (field-name grammar, no structural header, values without control
    /// characters, `List-Unsubscribe` URIs), problems located at the header's name.
    /// Returned sorted by name, so the message does not depend on JSON member order.
    mutating func customHeaders(_ name: String) -> [CustomHeader] {
        guard let value = object[name], value != .null else { return [] }
        guard case .object(let members) = value else {
            errors.append(.body(name, "Input should be a valid dictionary", type: "dict_type", input: value))
            return []
        }
        if members.count > CustomHeader.maxCount {
            errors.append(
                .body(
                    name,
                    "At most \(CustomHeader.maxCount) custom headers, not \(members.count)",
                    type: "too_long",
                    ctx: ["max_length": .int(CustomHeader.maxCount)]
                )
            )
            return []
        }
        var headers: [CustomHeader] = []
        for (headerName, headerValue) in members.sorted(by: { $0.key < $1.key }) {
            let loc: [FieldError.LocationPart] = [.key("body"), .key(name), .key(headerName)]
            if let problem = CustomHeader.nameProblem(headerName) {
                errors.append(
                    FieldError(loc, "Header name \(problem)", type: "value_error", input: .string(headerName))
                )
                continue
            }
            guard case .string(let text) = headerValue else {
                errors.append(
                    FieldError(loc, "Input should be a valid string", type: "string_type", input: headerValue)
                )
                continue
            }
            if let problem = CustomHeader.valueProblem(text, name: headerName) {
                errors.append(
                    FieldError(loc, "Header \(headerName) \(problem)", type: "value_error", input: headerValue)
                )
                continue
            }
            headers.append(CustomHeader(name: headerName, value: text))
        }
        if let problem = CustomHeader.setProblem(headers) {
            errors.append(.body(name, "Headers: \(problem)", type: "value_error", input: value))
        }
        return headers
    }
}
