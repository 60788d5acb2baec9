import FastCGI
import Foundation
import Logging
import MailModel
import Platform
import Queue
import Status
import Templates

/// `GET /health`: 200 `healthy` when every component works, else 503 `degraded`, with a
/// line per component.
struct HealthRoute: Sendable {
    let layout: QueueLayout
    let queue: any QueueStore
    let templates: TemplateStore
    /// `MIN_FREE_BYTES` and `MIN_FREE_INODES`: below either, storage is unhealthy.
    let minimumFree: (bytes: UInt64, inodes: UInt64)

    struct Body: Encodable {
        let status: String
        let timestamp: String
        let components: [String: String]
        /// Webhook events waiting and given up (from mailworkerd): shown, not judged, so a
        /// receiver that is down does not take the mail service out of a load balancer.
        let webhook_events: WebhookBacklog?
        /// The pool's send rate (`SMTP_MAX_RATE`, lowered while a relay throttles), shown.
        let send_rate: SendRateStatus?
        /// With a store several hosts share: each worker host's mailworkerd (`host/pid`),
        /// healthy or why not. Shown; `email_sender` is healthy while any one delivers.
        let worker_hosts: [String: String]?
    }

    func handle(_ request: Request, _ logger: Logger) -> Response {
        let now = Date()
        let status = WorkerStatus.read(from: layout)
        // Touched without being rewritten: mailworkerd is alive but cannot write a new file.
        let touched = WorkerStatus.lastTouched(in: layout).map { WorkerStatus.isFresh($0, at: now) } ?? false
        let current = status?.isFresh(at: now) == true ? status : nil
        var components: [String: String] = [:]
        components["queue_manager"] = Self.queueHealth(queue, reported: current?.queueProblems ?? [])
        components["storage"] = Self.storageHealth(
            layout.root,
            minimumFree: minimumFree,
            workerError: current?.storageError,
            statusUnwritable: current == nil && touched
        )
        components["template_engine"] = Self.templateHealth(templates)
        components["email_sender"] = Self.senderHealth(status, now: now, aliveByTouch: touched)
        // Several hosts: each heartbeat in the shared store judged as the local file is.
        var judged: [String: String] = [:]
        for beat in queue.workerStatuses() {
            var shared = try? QueueCoding.decoder().decode(WorkerStatus.self, from: Data(beat.status))
            shared?.heartbeat = beat.updatedAt  // the store's clock, not the host's
            judged[beat.id] = Self.senderHealth(shared, now: now)
        }
        let hosts = judged.isEmpty ? nil : judged
        // A responder-only host (no status file of its own) is judged by the worker hosts.
        if status == nil, !touched, let healthy = hosts?.values.first(where: { $0 == "healthy" }) {
            components["email_sender"] = healthy
        }
        let healthy = components.values.allSatisfy { $0 == "healthy" }
        return Response.json(
            Body(
                status: healthy ? "healthy" : "degraded",
                timestamp: Timestamp.iso8601(now),
                components: components,
                webhook_events: current?.webhookEvents,
                send_rate: current?.sendRate,
                worker_hosts: hosts
            ),
            status: healthy ? 200 : 503
        )
    }

    /// Free space and inodes against the reserve, and whether mailworkerd can record.
    static func storageHealth(
        _ path: String,
        minimumFree: (bytes: UInt64, inodes: UInt64),
        workerError: String?,
        statusUnwritable: Bool
    ) -> String {
        var problems: [String] = []
        do {
            let free = try Syscall.freeSpace(path)
            if free.bytes < minimumFree.bytes {
                problems.append("\(free.bytes) bytes free, below MIN_FREE_BYTES (\(minimumFree.bytes))")
            }
            if free.inodes < minimumFree.inodes {
                problems.append("\(free.inodes) inodes free, below MIN_FREE_INODES (\(minimumFree.inodes))")
            }
        } catch {
            problems.append("cannot read free space: \(error)")
        }
        if let workerError { problems.append("mailworkerd \(workerError)") }
        if statusUnwritable { problems.append("mailworkerd runs but cannot write its status file") }
        return problems.isEmpty ? "healthy" : "unhealthy: " + problems.joined(separator: "; ")
    }

    static func templateHealth(_ store: TemplateStore) -> String {
        do {
            let (names, problems) = try store.inventory()
            if !problems.isEmpty {
                return "unhealthy: "
                    + problems.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            }
            return names.isEmpty ? "unhealthy: no templates in \(store.directory)" : "healthy"
        } catch {
            return "unhealthy: \(error)"
        }
    }

    /// The delivery side, from mailworkerd's status file: its heartbeat is fresh, and delivery
    /// is not paused after a failure on the sender's side (healthy again once a probe or an
    /// attempt reaches the relay). With `aliveByTouch` (the
    /// file's time is fresh though its content is not) mailworkerd runs: storage is to blame,
    /// and `storageHealth` says so.
    static func senderHealth(_ status: WorkerStatus?, now: Date, aliveByTouch: Bool = false) -> String {
        guard let status else { return "unhealthy: mailworkerd has not written its status file" }
        guard status.isFresh(at: now) || aliveByTouch else {
            let age = Int(now.timeIntervalSince(status.heartbeat))
            if age < 0 {
                return "unhealthy: mailworkerd's last heartbeat is \(-age) s in the future (clock changed?); "
                    + "it is not known to be running"
            }
            return "unhealthy: mailworkerd is not running (last heartbeat \(age) s ago)"
        }
        if !status.autoProcessingEnabled { return "healthy" }
        if let until = status.sender.pausedUntil {
            let next = max(0, Int(until.timeIntervalSince(now).rounded(.up)))
            return "unhealthy: delivery paused, the relay failed on the sender's side (next probe in \(next) s; "
                + "retries are not spent): \(status.sender.lastError ?? "unknown error")"
        }
        guard status.sender.healthy else {
            return "unhealthy: delivery failing: \(status.sender.lastError ?? "unknown error")"
        }
        return "healthy"
    }

    /// The queue folder exists, is a directory, and this process may create files in it;
    /// `corrupt/` is empty; mailworkerd reports no entry it could not handle.
    static func queueHealth(_ queue: any QueueStore, reported: [String]) -> String {
        let findings = queue.healthProblems(reported: reported)
        return findings.isEmpty ? "healthy" : "unhealthy: " + findings.joined(separator: "; ")
    }
}
