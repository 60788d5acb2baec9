import Foundation
import Core

/// Reads typed fields from a JSON object, collecting a `FieldError` for each problem
/// (pydantic's error types and messages, so FastAPI clients read them unchanged).
struct FieldReader {
    let object: [String: JSONValue]
    var errors: [FieldError] = []

    init(_ object: [String: JSONValue]) {
        self.object = object
    }

    /// A present, non-null value, or nil (recording `missing` when `required`).
    private mutating func value(_ name: String, required: Bool) -> JSONValue? {
        guard let value = object[name], value != .null else {
            if required { errors.append(.body(name, "Field required", type: "missing")) }
            return nil
        }
        return value
    }

    mutating func string(_ name: String, required: Bool) -> String? {
        guard let value = value(name, required: required) else { return nil }
        guard case .string(let text) = value else {
            errors.append(.body(name, "Input should be a valid string", type: "string_type"))
            return nil
        }
        return text
    }

    /// A string that becomes a header: no control characters, so no header injection.
    mutating func headerText(_ name: String, required: Bool, maxLength: Int) -> String? {
        guard let text = string(name, required: required) else { return nil }
        if let problem = HeaderText.controlCharacterProblem(text) {
            errors.append(.body(name, problem, type: "value_error"))
            return nil
        }
        if text.unicodeScalars.count > maxLength {
            errors.append(.body(name, "String should have at most \(maxLength) characters", type: "string_too_long"))
            return nil
        }
        return text
    }

    mutating func address(_ name: String, required: Bool) -> String? {
        guard let text = string(name, required: required) else { return nil }
        if let problem = Mailbox.problem(text) {
            errors.append(.body(name, "value is not a valid email address: \(problem)", type: "value_error"))
            return nil
        }
        return text
    }

    /// A list of addresses; a single string is taken as a list of one.
    mutating func addressList(_ name: String) -> [String] {
        guard let value = value(name, required: false) else { return [] }
        let items: [JSONValue]
        switch value {
        case .array(let array): items = array
        case .string: items = [value]
        default:
            errors.append(.body(name, "Input should be a valid list", type: "list_type"))
            return []
        }
        var addresses: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item else {
                errors.append(.body(name, index: index, "Input should be a valid string", type: "string_type"))
                continue
            }
            if let problem = Mailbox.problem(text) {
                errors.append(.body(name, index: index, "value is not a valid email address: \(problem)", type: "value_error"))
            } else {
                addresses.append(text)
            }
        }
        return addresses
    }

    /// A template name: letters, digits, "_" and "-" (it names a file, so no paths).
    mutating func templateName(_ name: String) -> String? {
        guard let text = string(name, required: false) else { return nil }
        // Names starting with "_" are partials, usable only from inside a template.
        guard TemplateStore.isUsableName(text), !text.hasPrefix("_") else {
            errors.append(.body(name, "Template names are letters, digits, _ and - (not starting with _)", type: "value_error"))
            return nil
        }
        return text
    }

    /// A JSON object, or an empty one when absent.
    mutating func object(_ name: String) -> [String: JSONValue] {
        guard let value = value(name, required: false) else { return [:] }
        guard case .object(let members) = value else {
            errors.append(.body(name, "Input should be a valid dictionary", type: "dict_type"))
            return [:]
        }
        return members
    }

    mutating func int(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
        guard let value = value(name, required: false) else { return defaultValue }
        guard case .int(let number) = value else {
            errors.append(.body(name, "Input should be a valid integer", type: "int_type"))
            return defaultValue
        }
        guard range.contains(number) else {
            let (msg, type) = number < range.lowerBound
                ? ("Input should be greater than or equal to \(range.lowerBound)", "greater_than_equal")
                : ("Input should be less than or equal to \(range.upperBound)", "less_than_equal")
            errors.append(.body(name, msg, type: type))
            return defaultValue
        }
        return number
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ name: String, default defaultValue: T) -> T
    where T.RawValue == String {
        guard let text = string(name, required: false) else { return defaultValue }
        guard let value = T(rawValue: text) else {
            let allowed = T.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            errors.append(.body(name, "Input should be \(allowed)", type: "enum"))
            return defaultValue
        }
        return value
    }
}
