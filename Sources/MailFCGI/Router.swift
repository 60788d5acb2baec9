import FastCGI
import Foundation
import Logging
import MailModel
import Queue

/// The route table: (method, path pattern) to handler. A pattern is a path whose segments may
/// be parameters in braces (`/email/{request_id}`), each matching one non-empty segment.
/// Turns a thrown `HTTPError` into its response, answers 404 for unknown paths and 405 with
/// `Allow` for known paths with another method, and hides any other error behind a 500 that
/// carries an error id for the logs.
struct Router: Sendable {
    /// A route's handler; `parameters` holds the pattern's parameters by name, as sent
    /// (percent-decoding is the handler's, since an id never needs it).
    typealias Handler =
        @Sendable (_ request: Request, _ parameters: [String: String], _ logger: Logger) throws
        -> Response

    private struct Route: Sendable {
        let pattern: String
        let segments: [Substring]
        var handlers: [String: Handler]

        /// The parameters when `path` matches, else nil.
        func match(_ path: [Substring]) -> [String: String]? {
            guard path.count == segments.count else { return nil }
            var parameters: [String: String] = [:]
            for (segment, part) in zip(segments, path) {
                if segment.hasPrefix("{"), segment.hasSuffix("}") {
                    guard !part.isEmpty else { return nil }
                    parameters[String(segment.dropFirst().dropLast())] = String(part)
                } else if segment != part {
                    return nil
                }
            }
            return parameters
        }
    }

    /// In the order added; a literal path is matched before any pattern.
    private var routes: [Route] = []

    /// Every (method, pattern) added, `HEAD` left out: for checking them against the OpenAPI
    /// document.
    var operations: Set<String> {
        Set(routes.flatMap { route in route.handlers.keys.filter { $0 != "HEAD" }.map { "\($0) \(route.pattern)" } })
    }

    /// Adds a route; `GET` also answers `HEAD`.
    mutating func add(_ method: String, _ pattern: String, _ handler: @escaping Handler) {
        let index =
            routes.firstIndex { $0.pattern == pattern }
            ?? {
                routes.append(Route(pattern: pattern, segments: Self.segments(pattern), handlers: [:]))
                return routes.count - 1
            }()
        routes[index].handlers[method] = handler
        if method == "GET" { routes[index].handlers["HEAD"] = handler }
    }

    /// Adds a route without parameters.
    mutating func add(
        _ method: String,
        _ path: String,
        _ handler: @escaping @Sendable (Request, Logger) throws -> Response
    ) {
        add(method, path) { request, _, logger in try handler(request, logger) }
    }

    private static func segments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: false)
    }

    private func route(for path: String) -> (Route, [String: String])? {
        if let literal = routes.first(where: { $0.pattern == path }) { return (literal, [:]) }
        let parts = Self.segments(path)
        for route in routes {
            if let parameters = route.match(parts) { return (route, parameters) }
        }
        return nil
    }

    func respond(to request: Request, logger: Logger) -> Response {
        guard let (route, parameters) = route(for: request.path) else {
            return HTTPError(404, "Not Found").response
        }
        guard let handler = route.handlers[request.method] else {
            let allow = route.handlers.keys.sorted().joined(separator: ", ")
            return HTTPError(405, "Method Not Allowed", headers: [("Allow", allow)]).response
        }
        do {
            return try handler(request, parameters, logger)
        } catch let error as HTTPError {
            return error.response
        } catch let error as any StoreUnavailableError {
            logger.error("the queue store cannot be reached", metadata: ["error": "\(error)"])
            return HTTPError(
                503,
                "The queue cannot be reached right now, so nothing was stored or changed; retry later",
                headers: [("Retry-After", "5")]
            ).response
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
