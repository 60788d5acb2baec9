import Foundation
import MailModel
import Templates

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
            if required { errors.append(.body(name, "Field required", type: "missing", input: .object(object))) }
            return nil
        }
        return value
    }

    mutating func string(_ name: String, required: Bool) -> String? {
        guard let value = value(name, required: required) else { return nil }
        guard case .string(let text) = value else {
            errors.append(.body(name, "Input should be a valid string", type: "string_type", input: value))
            return nil
        }
        return text
    }

    /// A string that becomes a header: no control characters, so no header injection.
    mutating func headerText(_ name: String, required: Bool, maxLength: Int) -> String? {
        guard let text = string(name, required: required) else { return nil }
        if let problem = HeaderText.controlCharacterProblem(text) {
            errors.append(
                .body(name, problem, type: "value_error", input: .string(text), ctx: ["error": .string(problem)])
            )
            return nil
        }
        if text.unicodeScalars.count > maxLength {
            errors.append(
                .body(
                    name,
                    "String should have at most \(maxLength) characters",
                    type: "string_too_long",
                    input: .string(text),
                    ctx: ["max_length": .int(maxLength)]
                )
            )
            return nil
        }
        return text
    }

    /// An address, bare (`john@example.com`) or in name-addr form (`John Doe
    /// <john@example.com>`, RFC 5322 §3.4), surrounding spaces trimmed; the display name, if
    /// any, is returned beside it for the header.
    mutating func address(_ name: String, required: Bool) -> (address: String, displayName: String?)? {
        guard let text = string(name, required: required) else { return nil }
        return checkedAddress(text, field: name, index: nil)
    }

    /// A list of addresses; a single string is taken as a list of one.
    mutating func addressList(_ name: String) -> [(address: String, displayName: String?)] {
        guard let value = value(name, required: false) else { return [] }
        let items: [JSONValue]
        switch value {
        case .array(let array): items = array
        case .string: items = [value]
        default:
            errors.append(.body(name, "Input should be a valid list", type: "list_type", input: value))
            return []
        }
        var addresses: [(address: String, displayName: String?)] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item else {
                errors.append(
                    .body(name, index: index, "Input should be a valid string", type: "string_type", input: item)
                )
                continue
            }
            if let address = checkedAddress(text, field: name, index: index) {
                addresses.append(address)
            }
        }
        return addresses
    }

    private mutating func checkedAddress(
        _ text: String,
        field: String,
        index: Int?
    ) -> (address: String, displayName: String?)? {
        switch MailboxInput.parse(text) {
        case .success(let mailbox):
            return (mailbox.address, mailbox.displayName)
        case .failure(let failure):
            errors.append(
                .body(
                    field,
                    index: index,
                    "value is not a valid email address: \(failure.reason)",
                    type: "value_error",
                    input: .string(text),
                    ctx: ["reason": .string(failure.reason)]
                )
            )
            return nil
        }
    }

    /// A template name: letters, digits, "_" and "-" (it names a file, so no paths).
    mutating func templateName(_ name: String) -> String? {
        guard let text = string(name, required: false) else { return nil }
        // Names starting with "_" are partials, usable only from inside a template.
        guard TemplateStore.isUsableName(text), !text.hasPrefix("_") else {
            errors.append(
                .body(
                    name,
                    "Template names are letters, digits, _ and - (not starting with _)",
                    type: "value_error",
                    input: .string(text)
                )
            )
            return nil
        }
        return text
    }

    /// A JSON object, or an empty one when absent.
    mutating func object(_ name: String) -> [String: JSONValue] {
        guard let value = value(name, required: false) else { return [:] }
        guard case .object(let members) = value else {
            errors.append(.body(name, "Input should be a valid dictionary", type: "dict_type", input: value))
            return [:]
        }
        return members
    }

    /// An integer, converted as pydantic's lax mode converts: an integer, a float with no
    /// fractional part, a string of an integer (`"1"`), or a boolean (`true` is 1); within `range`.
    mutating func int(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
        guard let value = value(name, required: false) else { return defaultValue }
        let number: Int
        switch value {
        case .int(let n): number = n
        case .bool(let flag): number = flag ? 1 : 0
        case .double(let d) where d.rounded() == d && abs(d) < 1e15: number = Int(d)
        case .double:
            errors.append(
                .body(
                    name,
                    "Input should be a valid integer, got a number with a fractional part",
                    type: "int_from_float",
                    input: value
                )
            )
            return defaultValue
        case .string(let text):
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            // pydantic also takes a string of a whole float ("2.0").
            guard
                let parsed = Int(trimmed)
                    ?? Double(trimmed).flatMap({ $0.rounded() == $0 && abs($0) < 1e15 ? Int($0) : nil })
            else {
                errors.append(
                    .body(
                        name,
                        "Input should be a valid integer, unable to parse string as an integer",
                        type: "int_parsing",
                        input: value
                    )
                )
                return defaultValue
            }
            number = parsed
        default:
            errors.append(.body(name, "Input should be a valid integer", type: "int_type", input: value))
            return defaultValue
        }
        guard range.contains(number) else {
            let (msg, type, ctx): (String, String, [String: JSONValue]) =
                number < range.lowerBound
                ? (
                    "Input should be greater than or equal to \(range.lowerBound)", "greater_than_equal",
                    ["ge": .int(range.lowerBound)]
                )
                : (
                    "Input should be less than or equal to \(range.upperBound)", "less_than_equal",
                    ["le": .int(range.upperBound)]
                )
            errors.append(.body(name, msg, type: type, input: value, ctx: ctx))
            return defaultValue
        }
        return number
    }

    /// One of an enum's raw values, in any letter case (`"HTML"`).
    mutating func choice<T: RawRepresentable & CaseIterable>(_ name: String, default defaultValue: T) -> T
    where T.RawValue == String {
        guard let text = string(name, required: false) else { return defaultValue }
        guard let value = T(rawValue: text.lowercased()) else {
            let names = T.allCases.map { "'\($0.rawValue)'" }
            let expected = names.dropLast().joined(separator: ", ") + " or " + (names.last ?? "")
            errors.append(
                .body(
                    name,
                    "Input should be \(expected)",
                    type: "enum",
                    input: .string(text),
                    ctx: ["expected": .string(expected)]
                )
            )
            return defaultValue
        }
        return value
    }

    /// An RFC 3339 date-time with a zone (`2026-12-02T09:30:00Z`, `...+01:00`), at most
    /// `maxAhead` seconds after `now`; one in the past means now (returned as nil).
    mutating func scheduledTime(_ name: String, now: Date, maxAhead: TimeInterval) -> Date? {
        guard let text = string(name, required: false) else { return nil }
        guard let date = Self.rfc3339(text) else {
            errors.append(
                .body(
                    name,
                    "Input should be an RFC 3339 date-time with a time zone, e.g. 2026-12-02T09:30:00Z",
                    type: "datetime_parsing",
                    input: .string(text)
                )
            )
            return nil
        }
        if date.timeIntervalSince(now) > maxAhead {
            let days = Int(maxAhead / 86_400)
            errors.append(
                .body(
                    name,
                    "send_at may be at most \(days) days ahead (MAX_SCHEDULE_DAYS)",
                    type: "less_than_equal",
                    input: .string(text),
                    ctx: ["le": .string(Timestamp.iso8601(now.addingTimeInterval(maxAhead)))]
                )
            )
            return nil
        }
        return date > now ? date : nil
    }

    /// RFC 3339 §5.6 `date-time`: `YYYY-MM-DD`, `T` (or `t`, or a space), `hh:mm:ss`, an
    /// optional fraction of any length, and a zone that must be there (`Z` or `+hh:mm`).
    /// Every field is checked against its range (the day against its month; a leap second,
    /// `:60`, reads as the end of `:59`); nothing is normalised, so `02-30` or `25:00` is nil.
    static func rfc3339(_ text: String) -> Date? {
        let chars = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= chars.count, chars[range].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                return nil
            }
            return chars[range].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        func at(_ i: Int, _ c: Character) -> Bool { i < chars.count && chars[i] == c.asciiValue! }
        guard chars.count >= 20, let year = number(0..<4), at(4, "-"), let month = number(5..<7), at(7, "-"),
            let day = number(8..<10), at(10, "T") || at(10, "t") || at(10, " "), let hour = number(11..<13),
            at(13, ":"), let minute = number(14..<16), at(16, ":"), let second = number(17..<19)
        else { return nil }
        var i = 19
        var fraction = 0.0
        if at(i, ".") {
            var digits = 0
            var scale = 0.1
            i += 1
            while i < chars.count, chars[i] >= 0x30, chars[i] <= 0x39 {
                fraction += Double(chars[i] - 0x30) * scale
                scale /= 10
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
        }
        let offset: Int
        if at(i, "Z") || at(i, "z"), i + 1 == chars.count {
            offset = 0
        } else if at(i, "+") || at(i, "-"), i + 6 == chars.count, let h = number((i + 1)..<(i + 3)), at(i + 3, ":"),
            let m = number((i + 4)..<(i + 6)), h <= 23, m <= 59
        {
            offset = (at(i, "-") ? -1 : 1) * (h * 3600 + m * 60)
        } else {
            return nil
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard year >= 1, (1...12).contains(month), hour <= 23, minute <= 59, second <= 60,
            let first = calendar.date(from: DateComponents(year: year, month: month, day: 1)),
            let days = calendar.range(of: .day, in: .month, for: first), days.contains(day),
            let midnight = calendar.date(from: DateComponents(year: year, month: month, day: day))
        else { return nil }
        let seconds = Double(hour * 3600 + minute * 60 + min(second, 59)) + (second == 60 ? 0.999 : fraction)
        return midnight.addingTimeInterval(seconds - Double(offset))
    }

    /// `tags`: at most `EmailTag.maxCount` objects `{name, value}`, each checked by
    /// `EmailTag.problem`; names unique.
    mutating func tags(_ name: String) -> [EmailTag] {
        guard let value = value(name, required: false) else { return [] }
        guard case .array(let items) = value else {
            errors.append(.body(name, "Input should be a valid list", type: "list_type", input: value))
            return []
        }
        if items.count > EmailTag.maxCount {
            errors.append(
                .body(
                    name,
                    "List should have at most \(EmailTag.maxCount) items after validation, not \(items.count)",
                    type: "too_long",
                    ctx: ["max_length": .int(EmailTag.maxCount), "actual_length": .int(items.count)]
                )
            )
            return []
        }
        var tags: [EmailTag] = []
        var seen: Set<String> = []
        for (index, item) in items.enumerated() {
            guard case .object(let members) = item else {
                errors.append(
                    .body(name, index: index, "Input should be a valid dictionary", type: "dict_type", input: item)
                )
                continue
            }
            var parts: [String: String] = [:]
            for key in ["name", "value"] {
                let loc: [FieldError.LocationPart] = [.key("body"), .key(name), .index(index), .key(key)]
                guard case .string(let text)? = members[key] else {
                    let message = members[key] == nil ? "Field required" : "Input should be a valid string"
                    errors.append(
                        FieldError(
                            loc,
                            message,
                            type: members[key] == nil ? "missing" : "string_type",
                            input: members[key] ?? item
                        )
                    )
                    continue
                }
                if let problem = EmailTag.problem(text) {
                    errors.append(FieldError(loc, "Tag \(key) \(problem)", type: "value_error", input: .string(text)))
                    continue
                }
                parts[key] = text
            }
            guard let tagName = parts["name"], let tagValue = parts["value"] else { continue }
            guard seen.insert(tagName).inserted else {
                errors.append(
                    FieldError(
                        [.key("body"), .key(name), .index(index), .key("name")],
                        "Tag name \(tagName) is given twice",
                        type: "value_error",
                        input: .string(tagName)
                    )
                )
                continue
            }
            tags.append(EmailTag(name: tagName, value: tagValue))
        }
        return tags
    }
}
