import Mustache

/// A swift-mustache parse error as a sentence for people: where, and what.
enum MustacheErrorText {
    static func describe(_ error: any Error, file: String) -> String {
        guard let parse = error as? MustacheTemplate.ParserError else { return "\(file): \(error)" }
        let what: String =
            switch parse.error as? MustacheTemplate.Error {
            case .sectionCloseNameIncorrect: "a section is closed with another name than it was opened with"
            case .unfinishedName: "a tag is not closed"
            case .expectedSectionEnd: "a section is not closed"
            case .invalidSetDelimiter: "a delimiter change is malformed"
            default: "\(parse.error)"
            }
        // The first line of a text template holds a pragma we add, which shifts nothing but
        // the column on line 1; line numbers are the file's.
        return "\(file) line \(parse.context.lineNumber), column \(parse.context.columnNumber): \(what)"
    }
}
