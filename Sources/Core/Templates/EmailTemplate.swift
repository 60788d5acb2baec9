import Foundation
import Mustache

/// One template: `NAME.txt` (first line the subject, the rest the text body) and an
/// optional `NAME.html`, compiled with swift-mustache.
struct EmailTemplate: Sendable {
    let name: String
    let subject: MustacheTemplate
    let text: MustacheTemplate
    let html: MustacheTemplate?
    /// Names used by the subject, text and HTML, partials included.
    let placeholders: Placeholders

    /// The pragma that turns off HTML escaping: text parts and the subject are not HTML.
    static let textPragma = "{{% CONTENT_TYPE: TEXT}}"

    init(
        name: String,
        subject: MustacheTemplate,
        text: MustacheTemplate,
        html: MustacheTemplate?,
        placeholders: Placeholders
    ) {
        self.name = name
        self.subject = subject
        self.text = text
        self.html = html
        self.placeholders = placeholders
    }

    /// Compiles `textSource` (and `htmlSource`) of template `name`.
    /// - Throws: `TemplateError.invalidTemplate` with the parser's reason.
    init(name: String, textSource: String, htmlSource: String?) throws(TemplateError) {
        let lines = textSource.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        let subjectLine = lines[0].trimmingCharacters(in: .whitespacesAndNewlines)
        guard !subjectLine.isEmpty else {
            throw .invalidTemplate(name, reason: "\(name).txt has no subject on its first line")
        }
        let body = lines.count > 1 ? String(lines[1]) : ""
        self.name = name
        subject = try Self.compile(Self.textPragma + subjectLine, file: "\(name).txt")
        text = try Self.compile(Self.textPragma + body, file: "\(name).txt")
        html = try htmlSource.map { (source) throws(TemplateError) in try Self.compile(source, file: "\(name).html") }
        var names = Placeholders(scanning: textSource)
        if let htmlSource { names.merge(Placeholders(scanning: htmlSource), topLevel: true) }
        placeholders = names
    }

    private static func compile(_ source: String, file: String) throws(TemplateError) -> MustacheTemplate {
        do {
            return try MustacheTemplate(string: source)
        } catch {
            throw .invalidTemplate(file, reason: MustacheErrorText.describe(error, file: file))
        }
    }
}

/// A rendered template: what becomes the email's subject and parts.
public struct RenderedTemplate: Equatable, Sendable {
    public var subject: String
    public var text: String
    /// The HTML part, when the template has one.
    public var html: String?
}
