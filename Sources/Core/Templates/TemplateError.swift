import MailModel

/// Why a template could not be rendered. The API answers each with 400.
public enum TemplateError: Error, CustomStringConvertible, Equatable, Sendable {
    /// No template of that name; `available` lists the names there are.
    case unknownTemplate(String, available: [String])
    /// Variables the template uses that the request did not give, in order of first use.
    case missingVariables(template: String, names: [String])
    /// The template's files do not parse as Mustache, or it has no subject line.
    case invalidTemplate(String, reason: String)
    /// The rendered subject holds a line break or another control character, or is longer
    /// than `HeaderText.maxSubject` characters.
    case subjectNotOneLine(template: String)

    public var description: String {
        switch self {
        case .unknownTemplate(let name, let available):
            "Unknown template '\(name)'. Available templates: \(available.joined(separator: ", "))"
        case .missingVariables(let template, let names):
            "Template '\(template)' needs variables that were not given: \(names.joined(separator: ", "))"
        case .invalidTemplate(let name, let reason):
            "Template '\(name)' cannot be used: \(reason)"
        case .subjectNotOneLine(let template):
            "Template '\(template)': the rendered subject contains a line break or control character, or is over \(HeaderText.maxSubject) characters"
        }
    }
}
