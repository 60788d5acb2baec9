import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The queue as one JSON file per email under `data/` (see `QueueLayout` for the states).
///
/// Ownership of a claim is decided by rename(2): of several threads or processes renaming
/// the same pending file, exactly one succeeds. Which file to try next comes from a
/// `QueueIndex` in memory, so a claim does not scan the directory. The index is brought up
/// to date from the directory (a listing, reading only files it does not know yet) when it
/// is stale: at the first claim, after `invalidate()`, and before every claim when no
/// `QueueWatcher` feeds it arrivals (`useChangeNotifications()` was not called).
public final class FileQueue: QueueStore {
    public let layout: QueueLayout
    public let retry: RetryPolicy
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var index = QueueIndex()
        var stale = true
        var notified = false
    }

    /// - Throws: `SystemError` if the folders cannot be created.
    public init(layout: QueueLayout, retry: RetryPolicy = RetryPolicy(),
                logger: Logger = Logger(label: "queue")) throws {
        self.layout = layout
        self.retry = retry
        self.logger = logger
        try layout.create()
    }

    /// From now on the index is trusted between re-reads, because a `QueueWatcher` on the
    /// queue directory reports every arrival through `noteArrivals`.
    public func useChangeNotifications() {
        state.withLock { $0.notified = true }
    }

    /// Marks the index stale: the next claim re-reads the directory listing.
    public func invalidate() {
        state.withLock { $0.stale = true }
    }

    /// Adds files that arrived in the queue directory (names from inotify) to the index.
    public func noteArrivals(_ fileNames: [String]) {
        for name in fileNames {
            guard let base = QueueLayout.pendingBase(name),
                  !state.withLock({ $0.index.contains(base) }) else { continue }
            guard let fields = readIndexFields(base) else { continue }  // already claimed
            state.withLock { $0.index.insert(base, priority: fields.priority, notBefore: fields.notBefore) }
        }
    }

    /// When the earliest deferred email becomes due, as far as the index knows.
    public var nextDue: Date? {
        state.withLock { $0.index.nextDue }
    }

    /// Pending emails the index knows, and how many of them are deferred.
    public var indexCounts: (pending: Int, deferred: Int) {
        state.withLock { ($0.index.count, $0.index.deferredCount) }
    }

    public func enqueue(_ email: QueuedEmail) throws {
        guard let base = RequestID.fileBaseName(for: email.requestID) else {
            throw QueueError.invalidRequestID(email.requestID)
        }
        let data = try QueueCoding.encoder().encode(email)
        try AtomicFile.write(data, to: QueueLayout.pendingName(base), in: layout.queue)
        state.withLock { $0.index.insert(base, priority: email.priority, notBefore: email.nextAttemptAt) }
    }

    public func claim(now: Date) throws -> QueueClaim? {
        if state.withLock({ $0.stale || !$0.notified }) { try synchronize() }
        while let base = state.withLock({ $0.index.popNext(now: now) }) {
            let pending = layout.queue + "/" + QueueLayout.pendingName(base)
            let claimed = layout.queue + "/" + QueueLayout.claimedName(base)
            if !(try Self.renameUnlessGone(pending, claimed)) { continue }  // another claimant won
            guard let email = try readClaimed(base, at: now) else { continue }
            if let due = email.nextAttemptAt, due > now {
                // Known to the index under an older due time: put it back with the right one.
                try Syscall.rename(claimed, pending)
                state.withLock { $0.index.insert(base, priority: email.priority, notBefore: due) }
                continue
            }
            return QueueClaim(name: base, email: email)
        }
        return nil
    }

    /// rename(2) that reports `false` instead of throwing when `from` no longer exists.
    private static func renameUnlessGone(_ from: String, _ to: String) throws -> Bool {
        do {
            try Syscall.rename(from, to)
            return true
        } catch {
            if error.errno == ENOENT { return false }
            throw error
        }
    }

    public func markSent(_ claim: QueueClaim, at date: Date) throws {
        try moveToTrash(claim.name, status: "sent", at: date)
    }

    public func markFailed(_ claim: QueueClaim, error: String, permanent: Bool, at date: Date) throws -> FailureDisposition {
        var email = claim.email
        email.attempts.append(DeliveryAttempt(at: date, error: error))
        email.lastError = error
        if permanent || email.retryCount >= retry.maxRetries {
            let letter = DeadLetter(
                reason: error, kind: permanent ? "permanent" : "retries_exhausted",
                failedAt: date, attempts: email.attempts, email: email)
            try AtomicFile.write(
                try QueueCoding.encoder().encode(letter),
                to: QueueLayout.pendingName(claim.name), in: layout.deadLetter)
            try Syscall.unlink(layout.queue + "/" + QueueLayout.claimedName(claim.name))
            return .deadLettered
        }
        let due = date.addingTimeInterval(retry.delay(beforeRetry: email.retryCount))
        email.retryCount += 1
        email.nextAttemptAt = due
        // The rewrite replaces the claim file atomically, then one rename makes it pending.
        try AtomicFile.write(
            try QueueCoding.encoder().encode(email),
            to: QueueLayout.claimedName(claim.name), in: layout.queue, syncDirectory: false)
        try Syscall.rename(
            layout.queue + "/" + QueueLayout.claimedName(claim.name),
            layout.queue + "/" + QueueLayout.pendingName(claim.name))
        try Syscall.fsyncDirectory(layout.queue)
        state.withLock { $0.index.insert(claim.name, priority: email.priority, notBefore: due) }
        return .deferred(until: due)
    }

    public func release(_ claim: QueueClaim) throws {
        try Syscall.rename(
            layout.queue + "/" + QueueLayout.claimedName(claim.name),
            layout.queue + "/" + QueueLayout.pendingName(claim.name))
        try Syscall.fsyncDirectory(layout.queue)
        state.withLock {
            $0.index.insert(claim.name, priority: claim.email.priority, notBefore: claim.email.nextAttemptAt)
        }
    }

    /// Puts claims back to pending: at start every claim a crashed run left (`olderThan` 0),
    /// later those older than `CLAIM_TIMEOUT` (their claimant died or hung). A claim's age
    /// is its file's mtime, which the claimant sets when it claims. Also removes temp files
    /// abandoned mid-write more than a minute ago. Returns how many claims were put back.
    /// - Throws: `SystemError` when the queue directory cannot be read or renamed in.
    @discardableResult
    public func recoverClaims(olderThan age: TimeInterval = 0, now: Date = Date()) throws -> Int {
        var recovered = 0
        for name in try Syscall.listDirectory(layout.queue) {
            let path = layout.queue + "/" + name
            if AtomicFile.isTemporary(name) {
                if let modified = Syscall.modificationTime(path), now.timeIntervalSince(modified) > 60 {
                    _ = Glibc.unlink(path)
                }
            } else if let base = QueueLayout.claimedBase(name) {
                guard let modified = Syscall.modificationTime(path), now.timeIntervalSince(modified) >= age else { continue }
                if try Self.renameUnlessGone(path, layout.queue + "/" + QueueLayout.pendingName(base)) {
                    recovered += 1
                    logger.notice("claim put back to pending", metadata: ["file": "\(base)"])
                }
            }
        }
        if recovered > 0 {
            try Syscall.fsyncDirectory(layout.queue)
            invalidate()
        }
        return recovered
    }

    /// Deletes trash files moved there more than `age` seconds ago (their inode change time,
    /// which the rename into the trash sets). Returns how many were deleted.
    /// - Throws: `SystemError` when the trash cannot be listed.
    @discardableResult
    public func pruneTrash(olderThan age: TimeInterval, now: Date = Date()) throws -> Int {
        var pruned = 0
        for name in try Syscall.listDirectory(layout.trash) {
            let path = layout.trash + "/" + name
            if let changed = Syscall.changeTime(path), now.timeIntervalSince(changed) > age, Glibc.unlink(path) == 0 {
                pruned += 1
            }
        }
        return pruned
    }

    // MARK: - Internals

    /// Brings the index up to date with the directory: lists it, and reads the files the
    /// index does not know yet for their priority and due time. Names the index has but the
    /// directory lost are dropped lazily, when their rename fails.
    private func synchronize() throws {
        state.withLock { $0.stale = false }
        let names = try Syscall.listDirectory(layout.queue).compactMap(QueueLayout.pendingBase)
        for base in names where !state.withLock({ $0.index.contains(base) }) {
            guard let fields = readIndexFields(base) else { continue }
            state.withLock { $0.index.insert(base, priority: fields.priority, notBefore: fields.notBefore) }
        }
    }

    /// The fields the index orders by. A file that does not decode is indexed as normal
    /// priority and due now, so the claim that reads it sets it aside. Nil if it is gone.
    private func readIndexFields(_ base: String) -> (priority: Int, notBefore: Date?)? {
        struct Fields: Decodable {
            var priority: Int?
            var next_attempt_at: Date?
        }
        guard let bytes = try? Syscall.readFile(layout.queue + "/" + QueueLayout.pendingName(base)) else {
            return nil
        }
        let fields = try? QueueCoding.decoder().decode(Fields.self, from: Data(bytes))
        return (fields?.priority ?? 2, fields?.next_attempt_at)
    }

    /// Reads a claimed file; a file that is not a valid entry goes to the trash annotated,
    /// and nil is returned so the caller moves on.
    private func readClaimed(_ base: String, at date: Date) throws -> QueuedEmail? {
        let path = layout.queue + "/" + QueueLayout.claimedName(base)
        let bytes = try Syscall.readFile(path)
        try Syscall.touch(path)  // the claim's age starts now (see recoverClaims)
        let status: String
        do {
            return try QueueCoding.decoder().decode(QueuedEmail.self, from: Data(bytes))
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            status = "invalid_json"
        } catch {
            logger.debug("queue entry does not decode", metadata: ["error": "\(error)"])
            status = "invalid_entry"
        }
        try moveToTrash(base, status: status, at: date)
        logger.error("queue file set aside in the trash", metadata: ["file": "\(base)", "reason": "\(status)"])
        return nil
    }

    private func moveToTrash(_ base: String, status: String, at date: Date) throws {
        try Syscall.rename(
            layout.queue + "/" + QueueLayout.claimedName(base),
            layout.trash + "/" + QueueLayout.trashName(base, status: status, at: date))
        try Syscall.fsyncDirectory(layout.trash)
    }
}

/// Errors of the queue's own making (system call failures are `SystemError`).
public enum QueueError: Error, CustomStringConvertible, Equatable {
    /// The email's request id is not a UUIDv7, so no file name can be derived from it.
    case invalidRequestID(String)

    public var description: String {
        switch self {
        case .invalidRequestID(let id): "request id \(id) is not a UUIDv7"
        }
    }
}
