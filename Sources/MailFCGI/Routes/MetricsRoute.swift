import FastCGI
import Foundation
import Logging
import Prometheus
import Queue
import Status

/// `GET /metrics`: the Prometheus text format (0.0.4). mailfcgi's own metrics
/// (`ResponderMetrics`), the queue's depth by state and the age of the oldest due email (from
/// the store's census at each scrape), then mailworkerd's metrics as its status file carries
/// them, while its heartbeat is fresh (`mail_worker_up` says whether it is).
struct MetricsRoute: Sendable {
    let queue: any QueueStore
    let layout: QueueLayout
    let metrics: ResponderMetrics
    /// Gauges set at each scrape, in their own registry so that their names are emitted once.
    private let scrape = ScrapeGauges()

    init(queue: any QueueStore, layout: QueueLayout, metrics: ResponderMetrics) {
        self.queue = queue
        self.layout = layout
        self.metrics = metrics
    }

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        let now = Date()
        // A folder missing until the next sweep recreates it must not blind the scraper:
        // without a census the queue gauges are left out, the rest is served.
        let census: QueueCensus.Report?
        do {
            census = try queue.census(limit: 0, now: now)
        } catch {
            logger.warning("no queue census for /metrics", metadata: ["error": "\(error)"])
            census = nil
        }
        let status = WorkerStatus.read(from: layout)
        let fresh = status?.isFresh(at: now) == true
        var text = metrics.registry.emitToString()
        text += scrape.text(census: census, workerUp: fresh, now: now)
        if fresh, let worker = status?.metrics { text += worker }
        return Response(
            status: 200,
            headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
            body: Array(text.utf8)
        )
    }
}

/// The gauges `GET /metrics` sets from the census and the status file before emitting them.
final class ScrapeGauges: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let byState: [String: Gauge]
    private let oldestDue: Gauge
    private let workerUp: Gauge
    /// `mail_worker_up` alone, served when there is no census.
    private let workerOnly = PrometheusCollectorRegistry()

    static let states = ["pending", "scheduled", "deferred", "sending", "held", "dead_letter", "finished", "corrupt"]

    init() {
        var gauges: [String: Gauge] = [:]
        for state in Self.states {
            gauges[state] = registry.makeGauge(
                name: "mail_queue_emails",
                labels: [("state", state)],
                help: "Emails in the store by state (finished: sent or canceled, kept for TRASH_RETENTION_DAYS)."
            )
        }
        byState = gauges
        oldestDue = registry.makeGauge(
            name: "mail_queue_oldest_due_age_seconds",
            help: "How long the longest-waiting due email has been due (0 when none is waiting)."
        )
        workerUp = workerOnly.makeGauge(
            name: "mail_worker_up",
            help: "1 when mailworkerd's heartbeat is fresh (its metrics follow), else 0."
        )
    }

    func text(census: QueueCensus.Report?, workerUp up: Bool, now: Date) -> String {
        workerUp.set(to: up ? 1.0 : 0.0)
        guard let census else { return workerOnly.emitToString() }
        let counts = [
            "pending": census.pending, "scheduled": census.scheduled, "deferred": census.deferred,
            "sending": census.processing, "held": census.held, "dead_letter": census.deadLetter,
            "finished": census.trash,
            "corrupt": census.corrupt,
        ]
        for (state, gauge) in byState { gauge.set(to: Double(counts[state] ?? 0)) }
        oldestDue.set(to: census.oldestDue.map { max(0, now.timeIntervalSince($0)) } ?? 0)
        return registry.emitToString() + workerOnly.emitToString()
    }
}
