import Foundation
import Prometheus

/// mailfcgi's own Prometheus metrics (swift-prometheus): what the API accepted and canceled,
/// and how long storing took. Shared by every request thread (the library's metrics are
/// thread-safe); `GET /metrics` adds the queue's depth and mailworkerd's figures to them.
final class ResponderMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let accepted: Counter
    private let canceled: Counter
    private let suppressedRecipients: Counter
    private let enqueueDuration: DurationHistogram

    init() {
        accepted = registry.makeCounter(
            name: "mail_emails_accepted_total",
            help: "Emails stored by POST /email and POST /emails/batch (idempotent replays not counted again)."
        )
        canceled = registry.makeCounter(
            name: "mail_emails_canceled_total",
            help: "Emails canceled by DELETE /email/{request_id}."
        )
        suppressedRecipients = registry.makeCounter(
            name: "mail_recipients_suppressed_total",
            help: "Recipients left out of an email, or refusing it, because they are on the suppression list."
        )
        enqueueDuration = registry.makeDurationHistogram(
            name: "mail_enqueue_duration_seconds",
            buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1].map {
                Duration.microseconds(Int64($0 * 1_000_000))
            },
            help: "Time to store one request's emails durably (file, fsync, rename, directory fsync)."
        )
        registry.makeGauge(
            name: "mail_build_info",
            labels: [("version", OpenAPIDocument.version)],
            help: "The running version (always 1)."
        ).set(to: 1.0)
    }

    /// Counts `count` stored emails and the time their storing took.
    func stored(_ count: Int, seconds: TimeInterval) {
        accepted.increment(by: Int64(count))
        enqueueDuration.record(.microseconds(Int64(seconds * 1_000_000)))
    }

    func canceledOne() { canceled.increment() }

    func suppressed(_ count: Int) {
        if count > 0 { suppressedRecipients.increment(by: Int64(count)) }
    }
}
