import Delivery
import Foundation
import Prometheus
import Status

/// mailworkerd's Prometheus metrics (swift-prometheus), published in its status file for
/// mailfcgi's `GET /metrics`: what happened to each attempt, how long attempts took, and the
/// relay's health. Counters count since this process started, as Prometheus expects (a
/// restart shows as a reset, which `rate()` handles).
final class DeliveryMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let sent: Counter
    private let partiallySent: Counter
    private let deferred: Counter
    private let deadLettered: Counter
    private let duration: DurationHistogram
    private let relayHealthy: Gauge
    private let paused: Gauge
    private let busyWorkers: Gauge
    private let sendRate: Gauge
    private let webhookPending: Gauge
    private let webhookFailed: Gauge

    init(workers: Int) {
        sent = registry.makeCounter(
            name: "mail_emails_sent_total",
            help: "Emails the relay accepted for every recipient still pending (partial deliveries included)."
        )
        partiallySent = registry.makeCounter(
            name: "mail_emails_partially_sent_total",
            help: "Emails delivered to some recipients and refused for good to the others."
        )
        deferred = registry.makeCounter(
            name: "mail_emails_deferred_total",
            help: "Attempts that put the email back to be tried again (a 4xx, no answer, the sender's side)."
        )
        deadLettered = registry.makeCounter(
            name: "mail_emails_dead_lettered_total",
            help: "Emails given up: refused for good, out of retries, or past MAX_QUEUE_LIFETIME."
        )
        duration = registry.makeDurationHistogram(
            name: "mail_delivery_duration_seconds",
            buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60].map {
                Duration.milliseconds(Int64($0 * 1000))
            },
            help: "Time of one delivery attempt, from its claim to its recorded outcome."
        )
        relayHealthy = registry.makeGauge(
            name: "mail_relay_healthy",
            help: "1 when the relay is usable (no sender-side failure pending), else 0."
        )
        paused = registry.makeGauge(
            name: "mail_delivery_paused",
            help: "1 while delivery is paused after a sender-side failure, else 0."
        )
        busyWorkers = registry.makeGauge(name: "mail_workers_busy", help: "Workers attempting an email now.")
        sendRate = registry.makeGauge(
            name: "mail_send_rate_per_second",
            help: "The pool's send rate limit now (SMTP_MAX_RATE, lowered by a relay's throttle); 0: no limit."
        )
        webhookPending = registry.makeGauge(
            name: "mail_webhook_events",
            labels: [("state", "pending")],
            help: "Delivery events waiting for the webhook (pending) or given up after the last retry (failed)."
        )
        webhookFailed = registry.makeGauge(
            name: "mail_webhook_events",
            labels: [("state", "failed")],
            help: "Delivery events waiting for the webhook (pending) or given up after the last retry (failed)."
        )
        registry.makeGauge(name: "mail_workers", help: "Worker threads (NUM_WORKERS).").set(to: Double(workers))
    }

    /// Counts one attempt's outcome and duration.
    func record(_ attempt: DeliveryAgent.Attempt) {
        switch attempt.outcome {
        case .sent(let partial):
            sent.increment()
            if partial { partiallySent.increment() }
        case .deferred: deferred.increment()
        case .deadLettered: deadLettered.increment()
        }
        if attempt.attempted { duration.record(.milliseconds(Int64(attempt.seconds * 1000))) }
    }

    /// The metrics as Prometheus text, with the gauges set from `workers` and `sender` now.
    func text(
        workers: [WorkerMetrics],
        sender: SenderHealth,
        rate: Double?,
        webhookBacklog: (pending: Int, failed: Int),
        now: Date = Date()
    ) -> String {
        sendRate.set(to: rate ?? 0)
        webhookPending.set(to: Double(webhookBacklog.pending))
        webhookFailed.set(to: Double(webhookBacklog.failed))
        relayHealthy.set(to: sender.healthy ? 1.0 : 0.0)
        paused.set(to: (sender.pausedUntil.map { $0 > now } ?? false) ? 1.0 : 0.0)
        busyWorkers.set(to: Double(workers.filter { $0.currentBatch != nil }.count))
        return registry.emitToString()
    }
}
