import Digest
import Foundation
import Logging
import MailModel
import Platform
import Queue
import SMTP
import Settings
import Synchronization

/// Sends recorded delivery events to `WEBHOOK_URL`, one thread, oldest first and in order per
/// email (an event waits while an earlier one of its email is undelivered), each signed as
/// the Standard Webhooks specification says: `webhook-id` (the event id, stable across
/// retries, for de-duplication), `webhook-timestamp` (seconds), `webhook-signature`
/// (`v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}` with the secret's bytes).
/// A 2xx is delivered; anything else, or no answer within 10 s, is retried on
/// `WEBHOOK_RETRY_SCHEDULE`; after the last retry the event waits in `data/events/failed/`
/// for `mailctl events retry`. Without `WEBHOOK_URL` recorded events are dropped.
final class WebhookSender: Sendable {
    private let settings: WebhookSettings?
    private let events: any EventStore
    private let logger: Logger
    private let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<BackgroundThread?>(nil)
    private let counts = Mutex<(pending: Int, failed: Int)>((0, 0))

    init(settings: WebhookSettings?, events: any EventStore, logger: Logger) {
        self.settings = settings
        self.events = events
        self.logger = logger
    }

    /// Events waiting, and given up, at the last pass (for the status file and /metrics).
    var backlog: (pending: Int, failed: Int) { counts.withLock { $0 } }

    func start() {
        let started = BackgroundThread(name: "webhooks") { [self] in
            let client = WebhookClient(timeout: 10)
            while !stopping.load(ordering: .relaxed) {
                let seen = wakeup.generation
                let next = pass(client)
                // Woken at once by this process's events; mailfcgi's (canceled, suppressed)
                // and a retry's due time are found within 5 s. Each pass reads the waiting
                // events, so a long backlog is not re-read every second.
                wakeup.wait(after: seen, timeout: min(5, max(0.05, next?.timeIntervalSinceNow ?? 5)))
            }
        }
        thread.withLock { $0 = started }
    }

    /// Wakes the sender: an event was just recorded.
    func notify() { wakeup.signal() }

    func stop() async {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
        await thread.withLock({ $0 })?.join()
    }

    /// One pass over the pending events; returns when the next one is due, if known.
    private func pass(_ client: WebhookClient) -> Date? {
        let pending: [(name: String, event: PendingEvent)]
        do {
            let backlog = try events.backlog()
            counts.withLock { $0 = backlog }
            guard backlog.pending > 0 else { return nil }
            // Another host sends them (a shared store): look again shortly, in case it stops.
            guard events.isSender() else { return Date().addingTimeInterval(5) }
            pending = try events.pending()
        } catch {
            logger.error("cannot read the webhook events", metadata: ["error": "\(error)"])
            return nil
        }
        var waiting: Set<String> = []  // emails with an earlier event not delivered yet
        var nextDue: Date?
        for (name, entry) in pending where !stopping.load(ordering: .relaxed) {
            let email = entry.event.requestID
            guard !waiting.contains(email) else { continue }
            guard let settings, settings.events.contains(entry.event.type) else {
                try? events.delivered(name)  // nobody wants it
                continue
            }
            let now = Date()
            if let due = entry.nextAttemptAt, due > now {
                waiting.insert(email)
                nextDue = min(nextDue ?? due, due)
                continue
            }
            if !send(entry.event, settings, client, name: name, entry) { waiting.insert(email) }
        }
        return nextDue
    }

    /// Sends one event; true when delivered (or given up, so later events of its email go on).
    private func send(
        _ event: DeliveryEvent,
        _ settings: WebhookSettings,
        _ client: WebhookClient,
        name: String,
        _ entry: PendingEvent
    ) -> Bool {
        let body = Self.body(event)
        let timestamp = String(Int(Date().timeIntervalSince1970))
        let signed = Array("\(event.id).\(timestamp).".utf8) + body
        let signature = "v1," + Data(HMACSHA256.mac(key: settings.key, data: signed)).base64EncodedString()
        let failure: String
        do {
            let status = try client.post(
                url: settings.url,
                headers: [
                    ("webhook-id", event.id), ("webhook-timestamp", timestamp), ("webhook-signature", signature),
                ],
                body: body
            )
            if (200..<300).contains(status) {
                do { try events.delivered(name) } catch {
                    logger.error("webhook event delivered but not removed", metadata: ["event": "\(event.id)"])
                }
                return true
            }
            failure = "HTTP \(status)"
        } catch {
            failure = error.description
        }
        var updated = entry
        updated.attempts += 1
        updated.lastError = failure
        let givenUp = updated.attempts > settings.schedule.count
        if !givenUp { updated.nextAttemptAt = Date().addingTimeInterval(settings.schedule[updated.attempts - 1]) }
        do { try events.retry(name, updated, failed: givenUp) } catch {
            logger.error("cannot record a webhook attempt", metadata: ["event": "\(event.id)", "error": "\(error)"])
        }
        if givenUp {
            logger.error(
                "webhook event given up after its last retry; kept in data/events/failed (mailctl events retry)",
                metadata: ["event": "\(event.id)", "error": "\(failure)"]
            )
        } else {
            logger.warning(
                "webhook delivery failed; retried later",
                metadata: ["event": "\(event.id)", "error": "\(failure)", "attempt": "\(updated.attempts)"]
            )
        }
        return givenUp
    }

    /// `{"type", "timestamp", "data"}`, the Standard Webhooks payload shape.
    static func body(_ event: DeliveryEvent) -> [UInt8] {
        struct Payload: Encodable {
            let type: String
            let timestamp: Date
            let data: DeliveryEvent
        }
        let encoder = QueueCoding.encoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(
            (try? encoder.encode(Payload(type: event.type.rawValue, timestamp: event.createdAt, data: event))) ?? Data()
        )
    }
}
