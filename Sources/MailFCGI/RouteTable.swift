import Composition
import FastCGI
import Foundation
import Logging
import Queue
import QueueStores
import Settings
import Templates

/// Every route the responder answers, with what each handler needs. A new route goes here
/// (its handler in `Routes/`) and into the OpenAPI document (scripts/openapi.py);
/// `MailFCGITests` fails when the two disagree.
enum RouteTable {
    /// The router for `settings`.
    /// - Throws: `SystemError` when the queue's folders cannot be created, `TemplateError`
    ///   when the templates cannot be read.
    static func router(settings: MailSettings, logger: Logger) throws -> Router {
        // The queue store QUEUE_STORE chooses: the file queue, or PostgreSQL.
        let queue = try QueueStores.open(settings, program: .responder, logger: logger)
        let templates = try TemplateStore(directory: settings.templatesDirectory, logger: logger)
        let metrics = ResponderMetrics()
        let email = EmailRoute(
            queue: queue,
            composer: MessageComposer(sender: settings.sender),
            templates: templates,
            limits: EmailRequest.Limits(
                maxScheduleAhead: TimeInterval(settings.maxScheduleDays) * 86_400,
                maxAttachments: settings.maxAttachments
            ),
            maxMessageBytes: settings.maxMessageBytes,
            metrics: metrics
        )
        let lookup = EmailLookupRoute(queue: queue, metrics: metrics)
        let health = HealthRoute(
            layout: settings.layout,
            queue: queue,
            templates: templates,
            minimumFree: (settings.minFreeBytes, settings.minFreeInodes)
        )
        var router = Router()
        router.add("GET", "/", RootRoute().handle)
        router.add("POST", "/email", email.handle)
        router.add("POST", "/emails/batch", BatchRoute(single: email, maxItems: settings.maxBatch).handle)
        router.add("GET", "/email/{request_id}", lookup.get)
        router.add("DELETE", "/email/{request_id}", lookup.delete)
        router.add("GET", "/health", health.handle)
        router.add("GET", "/status", StatusRoute(queue: queue).handle)
        router.add("GET", "/templates", TemplatesRoute(templates: templates).handle)
        router.add("GET", "/workers/status", WorkersRoute(layout: settings.layout, queue: queue).handle)
        router.add("GET", "/metrics", MetricsRoute(queue: queue, layout: settings.layout, metrics: metrics).handle)
        let suppressions = SuppressionsRoute(queue: queue, ttl: settings.suppressionTTL)
        router.add("GET", "/suppressions", suppressions.list)
        router.add("POST", "/suppressions", suppressions.add)
        router.add("DELETE", "/suppressions/{address}", suppressions.remove)
        router.add("POST", "/process-batch", ProcessBatchRoute(socketPath: settings.layout.controlSocket).handle)
        let openAPI = OpenAPIDocument.json
        router.add("GET", "/openapi.json") { _, _ in
            Response(status: 200, headers: [("Content-Type", "application/json")], body: openAPI)
        }
        return router
    }
}
