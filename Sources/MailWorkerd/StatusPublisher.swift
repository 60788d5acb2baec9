import Core
import Foundation
import Logging
import Synchronization

/// Writes `data/status/workers.json` every `WorkerStatus.interval` seconds, and at once
/// when the pool state changes (`publish(state:)`).
final class StatusPublisher: Sendable {
    private let layout: QueueLayout
    private let fileName: String
    private let queue: FileQueue
    private let metrics: PoolMetrics
    private let autoProcessing: Bool
    private let startedAt = Date()
    private let logger: Logger
    /// The pool state, held while writing so that the periodic and the immediate writes,
    /// which share one temp file name, never overlap.
    private let poolState: Mutex<String>
    private let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)

    init(layout: QueueLayout, fileName: String, queue: FileQueue, metrics: PoolMetrics, autoProcessing: Bool, logger: Logger) {
        self.layout = layout
        self.fileName = fileName
        self.queue = queue
        self.metrics = metrics
        self.autoProcessing = autoProcessing
        self.logger = logger
        poolState = Mutex(autoProcessing ? "starting" : "disabled")
    }

    func start() {
        let started = Thread.spawn { [self] in
            while !stopping.load(ordering: .relaxed) {
                poolState.withLock { write(state: $0) }
                wakeup.wait(after: wakeup.generation, timeout: WorkerStatus.interval)
            }
        }
        thread.withLock { $0 = started }
    }

    /// Records a new pool state and writes the file now.
    func publish(state: String) {
        poolState.withLock {
            $0 = state
            write(state: state)
        }
    }

    /// Stops the periodic writes; the last state published stays in the file.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
        if let running = thread.withLock({ $0 }) { pthread_join(running, nil) }
    }

    private func write(state: String) {
        let (workers, sender) = metrics.snapshot
        let counts = queue.indexCounts
        let status = WorkerStatus(
            heartbeat: Date(), pid: getpid(), startedAt: startedAt, autoProcessingEnabled: autoProcessing,
            poolState: state, workers: workers, sender: sender,
            queuePending: counts.pending, queueDeferred: counts.deferred)
        do {
            try status.write(to: layout, fileName: fileName)
        } catch {
            logger.error("cannot write the status file", metadata: ["error": "\(error)"])
        }
    }
}
