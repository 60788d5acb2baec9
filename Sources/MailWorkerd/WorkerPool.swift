import Delivery
import Foundation
import Logging
import Platform
import Queue
import Synchronization

/// `NUM_WORKERS` threads, each with its own `DeliveryAgent` (and so its own SMTP
/// connection), delivering until `stop()`. Idle workers sleep until the queue watcher
/// reports a new file, or at most `WORKER_POLLING_INTERVAL` seconds. After a failure on the
/// sender's side they all wait while one probes the relay (`DeliveryPause`).
final class WorkerPool: Sendable {
    private let queue: any QueueStore
    let pause: DeliveryPause
    private let makeAgent: @Sendable (PoolMetrics) throws -> DeliveryAgent
    private let count: Int
    private let pollingInterval: Double
    private let logger: Logger
    private let wakeup = Wakeup()
    /// The longest a worker waits after its own connection was refused (`DELIVERY_PAUSE_MAX`).
    private var maxConnectionBackoff: Double { pause.maxDelay }
    private let threads = Mutex<[BackgroundThread]>([])
    private let stopping = Atomic<Bool>(false)
    let metrics: PoolMetrics
    /// `SMTP_MAX_RATE`, lowered while the relay asks the pool to slow down.
    let rate: SendRate
    /// Called on the worker's thread when a relay's throttle lowered `rate`.
    private let rateLowered = Mutex<(@Sendable () -> Void)?>(nil)

    init(
        queue: any QueueStore,
        count: Int,
        pollingInterval: Double,
        pause: DeliveryPause,
        rate: SendRate = SendRate(perSecond: 0),
        logger: Logger,
        makeAgent: @escaping @Sendable (PoolMetrics) throws -> DeliveryAgent
    ) {
        self.rate = rate
        self.queue = queue
        self.count = count
        self.pollingInterval = pollingInterval
        self.logger = logger
        self.makeAgent = makeAgent
        self.pause = pause
        metrics = PoolMetrics(workers: count, pause: pause)
    }

    /// Sets what to call when a relay's throttle lowers the pool's rate (the status file is
    /// written at once, so `/workers/status` shows the throttle without waiting for the next
    /// periodic write).
    func onRateLowered(_ body: @escaping @Sendable () -> Void) {
        rateLowered.withLock { $0 = body }
    }

    /// Wakes idle workers: something arrived in the queue.
    func notify() {
        wakeup.signal()
    }

    func start() throws {
        var started: [BackgroundThread] = []
        for worker in 1...count {
            // Each agent (and its connection) is handed to its thread and used by it alone.
            let agent = try makeAgent(metrics)
            started.append(BackgroundThread(name: "worker-\(worker)") { [self] in run(worker: worker, agent: agent) })
        }
        threads.withLock { $0 = started }
        logger.info("worker pool started", metadata: ["workers": "\(count)"])
    }

    /// Stops claiming and waits up to `timeout` seconds for each worker to finish the email
    /// it is sending. Returns the queue files still claimed by workers that did not finish
    /// in time (the caller puts them back before exiting).
    func stop(timeout: Double) async -> [String] {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
        let deadline = Date().addingTimeInterval(timeout)
        for thread in threads.withLock({ $0 }) {
            _ = await thread.join(timeout: max(0, deadline.timeIntervalSinceNow))
        }
        let unfinished = metrics.snapshot.workers.filter(\.running).compactMap(\.currentBatch)
        let busy = threads.withLock { $0 }.filter { !$0.isFinished }.count
        if unfinished.isEmpty, busy > 0 {
            // A probe of a relay that does not answer holds no claim: nothing to put back.
            logger.warning(
                "workers still waiting on the relay at SHUTDOWN_TIMEOUT; exiting without them",
                metadata: ["workers": "\(busy)"]
            )
        } else if unfinished.isEmpty {
            logger.info("worker pool stopped")
        } else {
            logger.warning(
                "sends still in flight at SHUTDOWN_TIMEOUT; their emails go back to the queue",
                metadata: ["files": "\(unfinished.joined(separator: ","))"]
            )
        }
        return unfinished
    }

    private func run(worker: Int, agent: DeliveryAgent) {
        var log = logger
        log[metadataKey: "worker_id"] = "\(worker)"
        metrics.setRunning(worker, true)
        defer {
            agent.transport.close()
            metrics.setRunning(worker, false)
        }
        // This worker's own backoff, in seconds, after its connection was refused while other
        // workers' sessions delivered (more workers than the relay allows connections).
        var connectionBackoff = 0.0
        while !stopping.load(ordering: .relaxed) {
            let seen = wakeup.generation
            switch pause.admit() {
            case .deliver: break
            case .wait(let seconds):
                wakeup.wait(after: seen, timeout: min(pollingInterval, max(0.001, seconds)))
                continue
            case .probe:
                probe(agent, log)
                continue
            }
            if let wait = rate.admit() {
                rest(min(wait, pollingInterval))
                continue
            }
            do {
                let started = ContinuousClock.now
                if let attempt = try agent.processNext(onClaim: { metrics.claimed(worker, file: $0) }) {
                    metrics.finished(worker, attempt)
                    if attempt.rateLimited {
                        // The relay is up and asks for fewer messages a second: slow the pool,
                        // no pause, no probe; the email went back without spending a retry.
                        if rate.slowDown() { rateLowered.withLock { $0 }?() }
                        let now = rate.current.perSecond.map { String(format: "%.1f", $0) } ?? "unlimited"
                        log.warning(
                            "the relay asks to slow down; the pool's rate is lowered",
                            metadata: [
                                "error": "\(attempt.error?.description ?? "a recipient throttled")",
                                "rate_per_s": "\(now)",
                            ]
                        )
                        continue
                    }
                    // An attempt got through within the second before this one began, or since
                    // (most often another worker's session): the relay is up, this connection
                    // was the one refused. After the worker's own last success this only delays
                    // a pause of the pool by its one-second wait.
                    if let error = attempt.error, error.scope == .sender,
                        pause.relayAnswered(since: started - .seconds(1))
                    {
                        connectionBackoff =
                            connectionBackoff == 0 ? 1 : min(maxConnectionBackoff, connectionBackoff * 2)
                        log.warning(
                            "connection refused while other workers deliver (NUM_WORKERS above the relay's limit?); this worker waits",
                            metadata: ["error": "\(error)", "wait_s": "\(connectionBackoff)"]
                        )
                        rest(connectionBackoff)
                        continue
                    }
                    if attempt.error == nil { connectionBackoff = 0 }
                    report(attempt, log)
                    continue
                }
            } catch {
                metrics.claimed(worker, file: nil)
                log.error("queue error", metadata: ["error": "\(error)"])
            }
            // Sleep until an arrival, the next deferred email's due time, or the poll.
            let untilDue = queue.nextDue.map { max(0.001, $0.timeIntervalSinceNow) } ?? pollingInterval
            wakeup.wait(after: seen, timeout: min(pollingInterval, untilDue))
        }
    }

    /// Sleeps `seconds`, or less if the pool stops.
    private func rest(_ seconds: Double) {
        let until = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !stopping.load(ordering: .relaxed), ContinuousClock.now < until {
            let left = until - ContinuousClock.now
            wakeup.wait(after: wakeup.generation, timeout: min(0.5, Double(left.components.seconds) + 0.001))
        }
    }

    /// Feeds an attempt's result to the pause: a sender-side failure starts one; any answer
    /// from the relay ends one (and wakes the waiting workers).
    private func report(_ attempt: DeliveryAgent.Attempt, _ log: Logger) {
        switch pause.note(attempt) {
        case .none: break
        case .paused:
            log.warning(
                "relay unavailable; delivery paused for every worker, retries not spent",
                metadata: ["error": "\(attempt.error?.description ?? "")"]
            )
        case .resumed:
            log.notice("the relay answers again; delivery resumes")
            wakeup.signal()
        }
    }

    /// One probe of the relay while delivery is paused; whatever it finds, emails past
    /// `MAX_QUEUE_LIFETIME` then leave for the dead letters.
    private func probe(_ agent: DeliveryAgent, _ log: Logger) {
        // Whatever the probe finds (a relay that authenticates and then refuses every MAIL
        // FROM keeps delivery paused too), emails past MAX_QUEUE_LIFETIME go.
        defer {
            do {
                try agent.expireDue()
            } catch {
                log.error("queue error", metadata: ["error": "\(error)"])
            }
        }
        do {
            try agent.transport.probe()
            pause.relayAnswered(delivered: false, byProbe: true)
            log.notice("the relay answers again; delivery resumes")
            wakeup.signal()
        } catch {
            pause.senderFailed(error, probe: true)
            let next = pause.health.pausedUntil.map { max(0, $0.timeIntervalSinceNow) } ?? 0
            log.warning(
                "relay still unavailable; delivery stays paused",
                metadata: ["error": "\(error)", "next_probe_in_s": "\(Int(next.rounded()))"]
            )
        }
    }
}
