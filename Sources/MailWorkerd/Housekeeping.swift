import Foundation
import Logging
import Platform
import Queue
import Settings
import Synchronization

/// The periodic queue chores of mailworkerd, on one thread:
/// - every `WORKER_POLLING_INTERVAL`: mark the index stale and wake the workers, the fallback
///   for an arrival inotify did not report;
/// - every `CLAIM_TIMEOUT`/4 (at most a minute): put back claims older than `CLAIM_TIMEOUT`;
/// - every hour: delete trash older than `TRASH_RETENTION_DAYS` (at least
///   `IDEMPOTENCY_TTL_HOURS`), and idempotency records
///   older than `IDEMPOTENCY_TTL_HOURS` (which mailfcgi writes).
final class Housekeeping: Sendable {
    private let queue: any QueueStore
    private let settings: MailSettings
    private let pool: WorkerPool
    private let logger: Logger
    private let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<BackgroundThread?>(nil)

    init(queue: any QueueStore, settings: MailSettings, pool: WorkerPool, logger: Logger) {
        self.queue = queue
        self.settings = settings
        self.pool = pool
        self.logger = logger
    }

    func start() {
        let started = BackgroundThread(name: "housekeeping") { [self] in run() }
        thread.withLock { $0 = started }
    }

    func stop() async {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
        await thread.withLock({ $0 })?.join()
    }

    private func run() {
        let claimSweep = min(60, settings.claimTimeout / 4)
        var nextPoll = Date()
        var nextSweep = Date()
        var nextPrune = Date()
        while !stopping.load(ordering: .relaxed) {
            let now = Date()
            if now >= nextPoll {
                queue.refresh()
                pool.notify()
                nextPoll = now.addingTimeInterval(settings.pollingInterval)
            }
            if now >= nextSweep {
                attempt("claim sweep") { try queue.recoverClaims(lockedOlderThan: settings.claimTimeout, now: Date()) }
                nextSweep = now.addingTimeInterval(claimSweep)
            }
            if now >= nextPrune {
                attempt("trash pruning") {
                    // Kept at least as long as an Idempotency-Key binds: a keyed retry whose
                    // first request died before recording its answer finds its email by id,
                    // and an email pruned sooner would be stored (and sent) again.
                    let age = max(
                        Double(settings.trashRetentionDays) * 86400,
                        Double(settings.idempotencyTTLHours) * 3600
                    )
                    let pruned = try queue.pruneFinished(olderThan: age, now: Date())
                    if pruned > 0 { logger.info("trash pruned", metadata: ["files": "\(pruned)"]) }
                }
                attempt("idempotency key pruning") {
                    let pruned = try queue.idempotencyKeys.prune(now: Date())
                    if pruned > 0 { logger.info("idempotency records pruned", metadata: ["files": "\(pruned)"]) }
                }
                attempt("suppression list pruning") {
                    let pruned = try queue.suppressions.prune(now: Date())
                    if pruned > 0 { logger.info("expired suppressions pruned", metadata: ["addresses": "\(pruned)"]) }
                }
                nextPrune = now.addingTimeInterval(3600)
            }
            let next = min(nextPoll, nextSweep, nextPrune)
            wakeup.wait(after: wakeup.generation, timeout: max(0.01, next.timeIntervalSinceNow))
        }
    }

    private func attempt(_ chore: String, _ body: () throws -> Void) {
        do { try body() } catch { logger.error("\(chore) failed", metadata: ["error": "\(error)"]) }
    }
}
