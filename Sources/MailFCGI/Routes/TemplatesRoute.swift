import FastCGI
import Foundation
import Logging
import MailModel
import Templates

/// `GET /templates`: the template names and their count; `?detailed=true` adds `manifest`,
/// in the Python service's shape, with each template's files, placeholders (the variables a
/// request must give) and description. `templates` stays a list of names either way.
struct TemplatesRoute: Sendable {
    let templates: TemplateStore

    struct Names: Encodable {
        let templates: [String]
        let count: Int
    }

    /// One manifest entry: the Python service's fields, and `files` as before.
    struct Entry: Encodable {
        let name: String
        let file_path: String
        let html_file_path: String?
        let placeholders: [String]
        let description: String
        let files: TemplateStore.Description.Files
    }

    struct Manifest: Encodable {
        let templates: [Entry]
        let generated_at: String
        let total_templates: Int
    }

    struct Detailed: Encodable {
        let templates: [String]
        let count: Int
        let manifest: Manifest
    }

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        // pydantic's lax booleans.
        switch request.queryItems["detailed"]?.lowercased() {
        case nil, "false", "0", "f", "n", "no", "off":
            let names = try templates.names()
            return Response.json(Names(templates: names, count: names.count))
        case "true", "1", "t", "y", "yes", "on":
            let described = try templates.describe()
            let folder = templates.directory
            let entries = described.map { t in
                Entry(
                    name: t.name,
                    file_path: folder + "/" + t.files.text,
                    html_file_path: t.files.html.map { folder + "/" + $0 },
                    placeholders: t.placeholders,
                    description: t.description,
                    files: t.files
                )
            }
            return Response.json(
                Detailed(
                    templates: described.map(\.name),
                    count: described.count,
                    manifest: Manifest(
                        templates: entries,
                        generated_at: Timestamp.iso8601(Date()),
                        total_templates: entries.count
                    )
                )
            )
        case let other?:
            throw HTTPError.validation([
                FieldError(
                    [.key("query"), .key("detailed")],
                    "Input should be a valid boolean, unable to interpret input",
                    type: "bool_parsing",
                    input: .string(other)
                )
            ])
        }
    }
}
