import Core
import Logging

/// `GET /templates`: the template names; `?detailed=true` adds each one's description,
/// files and placeholders (the variables a request must give).
struct TemplatesRoute: Sendable {
    let templates: TemplateStore

    struct Names: Encodable {
        let templates: [String]
        let count: Int
    }

    struct Detailed: Encodable {
        let templates: [TemplateStore.Description]
        let count: Int
    }

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        switch request.queryItems["detailed"]?.lowercased() {
        case nil, "false", "0":
            let names = try templates.names()
            return Response.json(Names(templates: names, count: names.count))
        case "true", "1":
            let described = try templates.describe()
            return Response.json(Detailed(templates: described, count: described.count))
        case let other?:
            throw HTTPError.validation([FieldError(
                [.key("query"), .key("detailed")], "Input should be a valid boolean, not '\(other)'", type: "bool_parsing")])
        }
    }
}
