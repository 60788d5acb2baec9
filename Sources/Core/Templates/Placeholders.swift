import Foundation

/// The names a Mustache template uses, found by scanning its tags (mustache(5): variables
/// `{{x}}`, `{{{x}}}`, `{{&x}}`, sections `{{#x}}`, inverted sections `{{^x}}`, partials
/// `{{>x}}`; comments `{{!…}}` are skipped). Only the default `{{ }}` delimiters are read.
///
/// `required` are the names at the top level, outside any section: they must come with the
/// request, and a missing one is an error naming it. Names inside a section may come from
/// the section's own value (a list item, an object), so they are listed in `all` only.
public struct Placeholders: Equatable, Sendable {
    /// Top-level names (the part before the first "."), in order of first use.
    public var required: [String] = []
    /// Every name the template mentions, in order of first use.
    public var all: [String] = []
    /// Partials the template includes.
    public var partials: [String] = []
    /// Partials included outside any section: their required names are required here too.
    public var topLevelPartials: [String] = []

    /// Scans `template`.
    public init(scanning template: String) {
        var depth = 0
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            var tagStart = open.upperBound
            let triple = rest[tagStart...].hasPrefix("{")
            if triple { tagStart = rest.index(after: tagStart) }
            guard let close = rest[tagStart...].range(of: triple ? "}}}" : "}}") else { break }
            let tag = rest[tagStart..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            rest = rest[close.upperBound...]
            guard let sigil = tag.first else { continue }
            let body = String(tag.dropFirst()).trimmingCharacters(in: .whitespaces)
            switch sigil {
            case "!", "=", "%": continue  // comment, delimiter change, pragma
            case "/": depth = max(0, depth - 1)
            case "#", "^", "$", "<":
                note(Self.variable(body), topLevel: depth == 0)
                depth += 1
            case ">":
                if !partials.contains(body) { partials.append(body) }
                if depth == 0, !topLevelPartials.contains(body) { topLevelPartials.append(body) }
            case "&": note(Self.variable(body), topLevel: depth == 0)
            default: note(Self.variable(tag), topLevel: depth == 0)
            }
        }
    }

    private mutating func note(_ name: String?, topLevel: Bool) {
        guard let name, name != "." else { return }
        if !all.contains(name) { all.append(name) }
        let head = String(name.split(separator: ".").first ?? Substring(name))
        if topLevel, !required.contains(head) { required.append(head) }
    }

    /// The variable in a tag body, without a swift-mustache transform: `uppercased(name)`.
    private static func variable(_ body: String) -> String? {
        var name = Substring(body)
        if let open = name.firstIndex(of: "("), name.last == ")" {
            name = name[name.index(after: open)..<name.index(before: name.endIndex)]
        }
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// Adds a partial's names, as if written where it is included.
    mutating func merge(_ other: Placeholders, topLevel: Bool) {
        for name in other.all where !all.contains(name) { all.append(name) }
        if topLevel {
            for name in other.required where !required.contains(name) { required.append(name) }
        }
    }
}
