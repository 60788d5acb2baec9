import Core
import Foundation
import Logging

/// `GET /health`: 200 `healthy` when every component works, else 503 `degraded`, with a
/// line per component.
struct HealthRoute: Sendable {
    let layout: QueueLayout
    let templates: TemplateStore

    struct Body: Encodable {
        let status: String
        let timestamp: String
        let components: [String: String]
    }

    func handle(_ request: Request, _ logger: Logger) -> Response {
        var components: [String: String] = [:]
        components["queue"] = Self.queueHealth(layout.queue)
        components["templates"] = Self.templateHealth(templates)
        components["sender"] = Self.senderHealth(WorkerStatus.read(from: layout), now: Date())
        let healthy = components.values.allSatisfy { $0 == "healthy" }
        return Response.json(
            Body(status: healthy ? "healthy" : "degraded", timestamp: Timestamp.iso8601(Date()), components: components),
            status: healthy ? 200 : 503)
    }

    static func templateHealth(_ store: TemplateStore) -> String {
        do {
            let (names, problems) = try store.inventory()
            if !problems.isEmpty {
                return "unhealthy: " + problems.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            }
            return names.isEmpty ? "unhealthy: no templates in \(store.directory)" : "healthy"
        } catch {
            return "unhealthy: \(error)"
        }
    }

    /// The delivery side, from mailworkerd's status file: its heartbeat is fresh, and its
    /// last delivery attempt did not fail on the sender's side.
    static func senderHealth(_ status: WorkerStatus?, now: Date) -> String {
        guard let status else { return "unhealthy: mailworkerd has not written its status file" }
        guard status.isFresh(at: now) else {
            let age = Int(now.timeIntervalSince(status.heartbeat))
            return "unhealthy: mailworkerd is not running (last heartbeat \(age) s ago)"
        }
        if !status.autoProcessingEnabled { return "healthy" }
        guard status.sender.healthy else {
            return "unhealthy: delivery failing: \(status.sender.lastError ?? "unknown error")"
        }
        return "healthy"
    }

    /// The queue folder exists, is a directory, and this process may create files in it.
    static func queueHealth(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "unhealthy: \(path) does not exist" }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return "unhealthy: \(path) is not a directory" }
        guard access(path, W_OK | X_OK) == 0 else { return "unhealthy: \(path) is not writable" }
        return "healthy"
    }
}
