import FastCGI
import Foundation
import Logging

/// `GET /`: what this service is, with every route, as the Python service answers it; its
/// clients and process managers use it as a readiness probe.
struct RootRoute: Sendable {
    /// Route to one-line description, in the Python service's words where it had the route.
    static let endpoints: [String: String] = [
        "POST /email": "Submit an email to the processing queue",
        "POST /emails/batch": "Submit up to MAX_BATCH emails at once (?validation=permissive to keep the valid ones)",
        "GET /email/{request_id}": "Where an email is: its state, recipients and attempts",
        "DELETE /email/{request_id}": "Cancel an email that is scheduled, queued, deferred or held",
        "GET /status": "Queue statistics and file metadata",
        "GET /health": "Health check of all system components",
        "GET /templates": "List available templates (?detailed=true for metadata)",
        "GET /workers/status": "Per-worker metrics and pool state",
        "GET /metrics": "Prometheus metrics (text format 0.0.4)",
        "GET /suppressions": "The suppression list, paged (?limit=, ?after=)",
        "POST /suppressions": "Add an address to the suppression list, with a reason",
        "DELETE /suppressions/{address}": "Remove an address from the suppression list",
        "POST /process-batch": "Process the next queued email now",
        "GET /": "This description of the service and its routes",
        "GET /docs": "Interactive API documentation (Swagger UI)",
        "GET /redoc": "The API documentation as one page (ReDoc)",
        "GET /openapi.json": "The OpenAPI description of this API",
    ]

    struct Body: Encodable {
        let name: String
        let version: String
        let description: String
        let endpoints: [String: String]
        let documentation: String
    }

    func handle(_ request: Request, _ logger: Logger) -> Response {
        Response.json(
            Body(
                name: "Email Dispatch Service",
                version: OpenAPIDocument.version,
                description: "Queues transactional email (raw or from a template) and delivers it over SMTP "
                    + "with retries and dead letters.",
                endpoints: Self.endpoints,
                documentation: "/docs"
            )
        )
    }
}
