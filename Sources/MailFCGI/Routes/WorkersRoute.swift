import FastCGI
import Foundation
import Logging
import MailModel
import Queue
import Status

/// `GET /workers/status`: mailworkerd's pool and per-worker metrics, read from its status
/// file. A missing file, or one whose heartbeat is older than three intervals, reads as
/// `not_running` with every worker stopped.
struct WorkersRoute: Sendable {
    let layout: QueueLayout
    let queue: any QueueStore

    struct Body: Encodable {
        let auto_processing_enabled: Bool?
        let worker_pool_status: PoolState
        let status: Pool
        /// Every worker host's mailworkerd, from a store several hosts share (absent with
        /// the file queue, whose one host the rest of the body describes).
        let hosts: [Host]?
    }

    /// One mailworkerd on some host, as its last heartbeat in the shared store says.
    struct Host: Encodable {
        let host: String
        let id: String
        let heartbeat: String
        /// Whether the heartbeat is fresh (`WorkerStatus.staleAfter`).
        let alive: Bool
        let worker_pool_status: PoolState
        let total_workers: Int
        let active_workers: Int
        let emails_sent: Int
        let emails_failed: Int
    }

    /// The hosts a shared store knows of, or nil when it keeps none.
    static func hosts(_ queue: any QueueStore, now: Date) -> [Host]? {
        let heartbeats = queue.workerStatuses()
        guard !heartbeats.isEmpty else { return nil }
        return heartbeats.compactMap { beat in
            guard let status = try? QueueCoding.decoder().decode(WorkerStatus.self, from: Data(beat.status)) else {
                return nil
            }
            let alive = WorkerStatus.isFresh(beat.updatedAt, at: now) && status.poolState != .stopped
            let state: PoolState = alive ? status.poolState : (status.poolState == .stopped ? .stopped : .notRunning)
            return Host(
                host: beat.host,
                id: beat.id,
                heartbeat: Timestamp.iso8601(beat.updatedAt),
                alive: alive,
                worker_pool_status: state,
                total_workers: status.workers.count,
                active_workers: alive ? status.workers.filter(\.running).count : 0,
                emails_sent: status.workers.reduce(0) { $0 + $1.emailsSent },
                emails_failed: status.workers.reduce(0) { $0 + $1.emailsFailed }
            )
        }
    }

    struct Pool: Encodable {
        let total_workers: Int
        let active_workers: Int
        let workers: [WorkerMetrics]
        let heartbeat: String?
        let pid: Int32?
        let sender: SenderHealth?
        let queue_pending: Int?
        let queue_deferred: Int?
        /// Messages a second: `SMTP_MAX_RATE` and the limit now (null: none), and whether a
        /// relay's "slow down" lowered it.
        let send_rate: SendRateStatus?
        /// Delivery events waiting for the webhook, and given up (`mailctl events retry`).
        let webhook_events: WebhookBacklog?
    }

    func handle(_ request: Request, _ logger: Logger) -> Response {
        let now = Date()
        let hosts = Self.hosts(queue, now: now)
        guard let file = WorkerStatus.read(from: layout) else {
            return Response.json(
                Body(
                    auto_processing_enabled: nil,
                    worker_pool_status: .notRunning,
                    status: Pool(
                        total_workers: 0,
                        active_workers: 0,
                        workers: [],
                        heartbeat: nil,
                        pid: nil,
                        sender: nil,
                        queue_pending: nil,
                        queue_deferred: nil,
                        send_rate: nil,
                        webhook_events: nil
                    ),
                    hosts: hosts
                )
            )
        }
        let alive = file.isFresh(at: now)
        let workers = file.workers.map { worker -> WorkerMetrics in
            var worker = worker
            if !alive {
                worker.running = false
                worker.currentBatch = nil
            }
            return worker
        }
        let state: PoolState = alive ? file.poolState : (file.poolState == .stopped ? .stopped : .notRunning)
        return Response.json(
            Body(
                auto_processing_enabled: file.autoProcessingEnabled,
                worker_pool_status: state,
                status: Pool(
                    total_workers: workers.count,
                    active_workers: workers.filter(\.running).count,
                    workers: workers,
                    heartbeat: Timestamp.iso8601(file.heartbeat),
                    pid: file.pid,
                    sender: file.sender,
                    queue_pending: file.queuePending,
                    queue_deferred: file.queueDeferred,
                    send_rate: file.sendRate,
                    webhook_events: file.webhookEvents
                ),
                hosts: hosts
            )
        )
    }
}
