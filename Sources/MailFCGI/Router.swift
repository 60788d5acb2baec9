import FastCGI
import Foundation
import Logging
import MailModel

/// The route table: (method, path) to handler. Turns a thrown `HTTPError` into its response,
/// answers 404 for unknown paths and 405 with `Allow` for known paths with another method,
/// and hides any other error behind a 500 that carries an error id for the logs.
struct Router: Sendable {
    typealias Handler = @Sendable (Request, Logger) throws -> Response

    private var routes: [String: [String: Handler]] = [:]

    /// Adds a route; `GET` also answers `HEAD`.
    mutating func add(_ method: String, _ path: String, _ handler: @escaping Handler) {
        routes[path, default: [:]][method] = handler
        if method == "GET" { routes[path, default: [:]]["HEAD"] = handler }
    }

    func respond(to request: Request, logger: Logger) -> Response {
        guard let byMethod = routes[request.path] else {
            return HTTPError(404, "Not Found").response
        }
        guard let handler = byMethod[request.method] else {
            let allow = byMethod.keys.sorted().joined(separator: ", ")
            return HTTPError(405, "Method Not Allowed", headers: [("Allow", allow)]).response
        }
        do {
            return try handler(request, logger)
        } catch let error as HTTPError {
            return error.response
        } catch {
            // Our UUIDv7 (getrandom(2)): Foundation's UUID() gave all zeros when out of descriptors.
            let errorID = RequestID.make()
            logger.error("internal error", metadata: ["error_id": "\(errorID)", "error": "\(error)"])
            struct Body: Encodable {
                let detail: String
                let error_id: String
            }
            return Response.json(Body(detail: "Internal server error", error_id: errorID), status: 500)
        }
    }
}
