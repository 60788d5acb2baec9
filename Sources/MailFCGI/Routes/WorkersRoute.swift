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

    struct Body: Encodable {
        let auto_processing_enabled: Bool?
        let worker_pool_status: PoolState
        let status: Pool
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
                    )
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
                )
            )
        )
    }
}
