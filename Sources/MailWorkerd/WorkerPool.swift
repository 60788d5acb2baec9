import Core
import Foundation
import Logging
import Synchronization

/// `NUM_WORKERS` threads, each with its own `DeliveryAgent` (and so its own SMTP
/// connection), delivering until `stop()`. Idle workers sleep until the queue watcher
/// reports a new file, or at most `WORKER_POLLING_INTERVAL` seconds.
final class WorkerPool: Sendable {
    private let queue: FileQueue
    private let makeAgent: @Sendable () throws -> DeliveryAgent
    private let count: Int
    private let pollingInterval: Double
    private let logger: Logger
    private let wakeup = Wakeup()
    private let threads = Mutex<[pthread_t]>([])
    private let stopping = Atomic<Bool>(false)

    init(queue: FileQueue, count: Int, pollingInterval: Double, logger: Logger,
         makeAgent: @escaping @Sendable () throws -> DeliveryAgent) {
        self.queue = queue
        self.count = count
        self.pollingInterval = pollingInterval
        self.logger = logger
        self.makeAgent = makeAgent
    }

    /// Wakes idle workers: something arrived in the queue.
    func notify() {
        wakeup.signal()
    }

    func start() throws {
        let agents = try (0..<count).map { _ in try makeAgent() }
        let started = agents.enumerated().map { index, agent in
            Thread.spawn { [self] in run(worker: index + 1, agent: agent) }
        }
        threads.withLock { $0 = started }
        logger.info("worker pool started", metadata: ["workers": "\(count)"])
    }

    /// Lets each worker finish the email it is sending, then joins them.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
        for thread in threads.withLock({ $0 }) { pthread_join(thread, nil) }
        logger.info("worker pool stopped")
    }

    private func run(worker: Int, agent: DeliveryAgent) {
        var log = logger
        log[metadataKey: "worker_id"] = "\(worker)"
        defer { agent.transport.close() }
        while !stopping.load(ordering: .relaxed) {
            let seen = wakeup.generation
            do {
                if try agent.processNext() != nil { continue }
            } catch {
                log.error("queue error", metadata: ["error": "\(error)"])
            }
            wakeup.wait(after: seen, timeout: pollingInterval)
        }
    }
}

/// A counter plus condition variable: `wait(after:)` returns as soon as `signal()` has been
/// called since the caller read `generation`, so a signal between the check and the wait is
/// never lost.
final class Wakeup: @unchecked Sendable {
    private let condition = NSCondition()
    private var count: UInt64 = 0

    var generation: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return count
    }

    func signal() {
        condition.lock()
        count &+= 1
        condition.broadcast()
        condition.unlock()
    }

    func wait(after seen: UInt64, timeout seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while count == seen, condition.wait(until: deadline) {}
    }
}
