import Delivery
import Foundation
import Logging
import MailModel
import Platform
import Queue
import Status
import Synchronization

/// Writes `data/status/workers.json` every `WorkerStatus.interval` seconds, and at once
/// when the pool state changes (`publish(state:)`).
final class StatusPublisher: Sendable {
    private let layout: QueueLayout
    private let fileName: String
    private let queue: any QueueStore
    private let metrics: PoolMetrics
    private let rate: SendRate
    private let webhooks: WebhookSender
    private let autoProcessing: Bool
    private let startedAt = Date()
    private let logger: Logger
    /// The pool state, held while writing so that the periodic and the immediate writes,
    /// which share one temp file name, never overlap.
    private let poolState: Mutex<Published>
    private let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<BackgroundThread?>(nil)

    init(
        layout: QueueLayout,
        fileName: String,
        queue: any QueueStore,
        metrics: PoolMetrics,
        rate: SendRate,
        webhooks: WebhookSender,
        autoProcessing: Bool,
        logger: Logger
    ) {
        self.rate = rate
        self.webhooks = webhooks
        self.layout = layout
        self.fileName = fileName
        self.queue = queue
        self.metrics = metrics
        self.autoProcessing = autoProcessing
        self.logger = logger
        poolState = Mutex(Published(name: autoProcessing ? .starting : .disabled))
    }

    func start() {
        let started = BackgroundThread(name: "status") { [self] in
            while !stopping.load(ordering: .relaxed) {
                // Read before writing: a refresh asked for during the write is not lost.
                let seen = wakeup.generation
                poolState.withLock { write(&$0) }
                wakeup.wait(after: seen, timeout: WorkerStatus.interval)
            }
        }
        thread.withLock { $0 = started }
    }

    /// Records a new pool state and writes the file now.
    func publish(state: PoolState) {
        poolState.withLock {
            $0.name = state
            write(&$0)
        }
    }

    /// Asks the status thread to write the file now (for a change, such as a lowered send
    /// rate, that the caller's thread should not wait on a write for).
    func refresh() {
        wakeup.signal()
    }

    /// Stops the periodic writes; the last state published stays in the file.
    func stop() async {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
        await thread.withLock({ $0 })?.join()
    }

    private struct Published {
        var name: PoolState
        /// Consecutive failed writes, to log once a minute.
        var failedWrites = 0
    }

    private func write(_ pool: inout Published) {
        let state = pool.name
        let (workers, sender) = metrics.snapshot
        let counts = queue.pendingCounts
        let status = WorkerStatus(
            heartbeat: Date(),
            pid: getpid(),
            startedAt: startedAt,
            autoProcessingEnabled: autoProcessing,
            poolState: state,
            workers: workers,
            sender: sender,
            queuePending: counts.pending,
            queueDeferred: counts.deferred,
            queueProblems: queue.problems,
            storageError: metrics.recordingTrouble,
            metrics: metrics.prometheus.text(
                workers: workers,
                sender: sender,
                rate: rate.current.perSecond,
                webhookBacklog: webhooks.backlog
            ),
            sendRate: SendRateStatus(
                configured: rate.configured,
                current: rate.current.perSecond,
                throttled: rate.current.throttled
            ),
            webhookEvents: WebhookBacklog(pending: webhooks.backlog.pending, failed: webhooks.backlog.failed)
        )
        // A store shared by several hosts keeps a copy for every host's responder.
        if let bytes = try? QueueCoding.encoder().encode(status) {
            queue.publishWorkerStatus(id: "\(ProcessInfo.processInfo.hostName)/\(getpid())", status: Array(bytes))
        }
        do {
            try status.write(to: layout, fileName: fileName)
            pool.failedWrites = 0
        } catch {
            // With the disk full no new file can be written, but the old one's time can be
            // set: mailfcgi then sees that this process is alive and blames the storage.
            try? Syscall.touch(path: layout.status + "/" + fileName)
            if pool.failedWrites % 60 == 0 {
                logger.error("cannot write the status file", metadata: ["error": "\(error)"])
            }
            pool.failedWrites += 1
        }
    }
}
