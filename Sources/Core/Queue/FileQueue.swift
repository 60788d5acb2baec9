import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The queue as one JSON file per email under `data/` (see `QueueLayout` for the states).
///
/// **Ownership.** A claim renames `B.json` to `active/B.processing.json` without replacing
/// (renameat2 `RENAME_NOREPLACE`), then opens it and takes an exclusive flock(2), and checks
/// the name still points at the locked file. The lock is the proof of ownership: the kernel
/// drops it when the owner exits or is killed, so `recoverClaims` puts back exactly the
/// claims whose owner is gone, even while other workers and processes are busy.
///
/// **Order.** Which file to try next comes from a `QueueIndex` in memory, so a claim does not
/// scan the directory. The index is brought up to date from a directory listing (reading only
/// files it does not know) when stale: at the first claim, after `invalidate()`, and before
/// every claim when no `QueueWatcher` reports arrivals (`useChangeNotifications()`).
public final class FileQueue: QueueStore {
    public let layout: QueueLayout
    public let retry: RetryPolicy
    private let logger: Logger
    private let state = Mutex(State())
    /// Held while the index is re-read from the directory, so that claimants arriving
    /// meanwhile wait for the full index instead of finding it empty and going to sleep.
    private let synchronizing = Mutex(())

    private struct State {
        var index = QueueIndex()
        var stale = true
        /// Counts `invalidate()` calls.
        var invalidations = 0
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
        state.withLock {
            $0.stale = true
            $0.invalidations += 1
        }
    }

    /// Adds files that arrived in the queue directory (names from inotify) to the index.
    public func noteArrivals(_ fileNames: [String]) {
        for name in fileNames {
            guard let base = QueueLayout.pendingBase(name) else { continue }
            addToIndex(base)
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

    // MARK: - QueueStore

    public func enqueue(_ email: QueuedEmail) throws {
        guard let base = RequestID.fileBaseName(for: email.requestID) else {
            throw QueueError.invalidRequestID(email.requestID)
        }
        let data = try QueueCoding.encoder().encode(email)
        try AtomicFile.write(data, to: QueueLayout.pendingName(base), in: layout.queue)
        state.withLock { $0.index.insert(base, priority: email.priority, notBefore: email.nextAttemptAt) }
    }

    public func claim(now: Date) throws -> QueueClaim? {
        if needsSynchronizing {
            // With an empty index, wait for a re-read in progress (at start, on a backlog);
            // otherwise go on with the index while another claimant re-reads.
            if state.withLock({ $0.index.count == 0 }) {
                try synchronizing.withLock { _ in try refreshIfStale() }
            } else {
                _ = try synchronizing.withLockIfAvailable { _ in try refreshIfStale() }
            }
        }
        while let base = state.withLock({ $0.index.popNext(now: now) }) {
            guard let (email, lock) = try take(base, at: now) else { continue }
            if let due = email.nextAttemptAt, due > now {
                // The index had an older due time: put it back under the right one.
                try putBack(base, lock: lock)
                state.withLock { $0.index.insert(base, priority: email.priority, notBefore: due) }
                continue
            }
            return QueueClaim(name: base, email: email, lock: lock)
        }
        return nil
    }

    public func markSent(_ claim: QueueClaim, at date: Date) throws {
        try moveToTrash(claim.name, status: "sent", at: date)
        claim.lock?.release()
    }

    public func markFailed(_ claim: QueueClaim, error: String, permanent: Bool, at date: Date) throws -> FailureDisposition {
        var email = claim.email
        email.attempts.append(DeliveryAttempt(at: date, error: error))
        email.lastError = error
        let claimed = path(QueueLayout.claimedName(claim.name))
        if permanent || email.retryCount >= retry.maxRetries {
            let letter = DeadLetter(
                reason: error, kind: permanent ? "permanent" : "retries_exhausted",
                failedAt: date, attempts: email.attempts, email: email)
            try AtomicFile.write(
                try QueueCoding.encoder().encode(letter),
                to: QueueLayout.pendingName(claim.name), in: layout.deadLetter)
            try Syscall.unlink(claimed)
            claim.lock?.release()
            return .deadLettered
        }
        let due = date.addingTimeInterval(retry.delay(beforeRetry: email.retryCount))
        email.retryCount += 1
        email.nextAttemptAt = due
        // The new version appears under the pending name while the locked claim still
        // exists, so no other claimant can take it until the claim is unlinked.
        try AtomicFile.write(
            try QueueCoding.encoder().encode(email), to: QueueLayout.pendingName(claim.name), in: layout.queue)
        try Syscall.unlink(claimed)
        claim.lock?.release()
        state.withLock { $0.index.insert(claim.name, priority: email.priority, notBefore: due) }
        return .deferred(until: due)
    }

    public func release(_ claim: QueueClaim) throws {
        try putBack(claim.name, lock: claim.lock)
        try Syscall.fsyncDirectory(layout.queue)
        state.withLock {
            $0.index.insert(claim.name, priority: claim.email.priority, notBefore: claim.email.nextAttemptAt)
        }
    }

    // MARK: - Recovery and pruning

    /// Puts back a claim this process holds but can no longer finish (its thread is stuck
    /// past the shutdown timeout). The process exits next, which drops the claim's lock.
    /// - Throws: `SystemError` from the rename.
    public func abandonClaim(_ name: String) throws {
        if try putBackUnlessGone(name) { try Syscall.fsyncDirectory(layout.queue) }
    }

    /// Puts back to pending every claim whose owner is gone (its file is not locked), and,
    /// when `lockedOlderThan` is given, claims whose living owner has held them longer
    /// (`CLAIM_TIMEOUT`: a hung owner; delivery may then happen twice, never zero times).
    /// A claim's age is its file's mtime, which the claimant sets when it claims. Also
    /// removes temp files abandoned mid-write more than a minute ago.
    /// - Returns: how many claims were put back.
    /// - Throws: `SystemError` when the queue directory cannot be read or renamed in.
    @discardableResult
    public func recoverClaims(lockedOlderThan timeout: TimeInterval? = nil, now: Date = Date()) throws -> Int {
        var recovered = 0
        for name in try Syscall.listDirectory(layout.queue) where AtomicFile.isTemporary(name) {
            let file = path(name)
            if let modified = Syscall.modificationTime(file), now.timeIntervalSince(modified) > 60 {
                _ = Glibc.unlink(file)
            }
        }
        for name in try Syscall.listDirectory(layout.active) {
            let file = layout.active + "/" + name
            guard let base = QueueLayout.claimedBase(name),
                  let fd = try? Syscall.open(file, O_RDONLY) else { continue }
            let lock = ClaimLock(fd: fd)
            defer { lock.release() }
            if try !Syscall.tryLock(fd, path: file) {
                guard let timeout, let modified = Syscall.modificationTime(file),
                      now.timeIntervalSince(modified) >= timeout else { continue }
                logger.warning("claim held past CLAIM_TIMEOUT; putting it back", metadata: ["file": "\(base)"])
            }
            guard Syscall.names(file, file: fd) else { continue }
            if try putBackUnlessGone(base) {
                recovered += 1
                logger.notice("claim put back to pending", metadata: ["file": "\(base)"])
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
            let file = layout.trash + "/" + name
            if let changed = Syscall.changeTime(file), now.timeIntervalSince(changed) > age, Glibc.unlink(file) == 0 {
                pruned += 1
            }
        }
        return pruned
    }

    // MARK: - Internals

    private func path(_ name: String) -> String { layout.queue + "/" + name }

    /// Claims `base`: rename without replacing, open, lock, check, read, and stamp the claim
    /// time. Nil when another claimant got there first, or the file is not a valid entry
    /// (then it is set aside in the trash).
    private func take(_ base: String, at now: Date) throws -> (QueuedEmail, ClaimLock)? {
        let claimed = path(QueueLayout.claimedName(base))
        // Gone: claimed by someone else. Exists: its previous claim is still being closed.
        guard try Self.renameNoReplace(path(QueueLayout.pendingName(base)), claimed, tolerating: [ENOENT, EEXIST])
        else { return nil }
        guard let fd = try? Syscall.open(claimed, O_RDONLY) else { return nil }
        let lock = ClaimLock(fd: fd)
        guard try Syscall.tryLock(fd, path: claimed), Syscall.names(claimed, file: fd) else {
            lock.release()
            return nil  // a recovery or a newer claimant holds it
        }
        try Syscall.touch(fd, path: claimed)  // the claim's age starts now (see recoverClaims)
        let bytes = try Syscall.readAll(fd, path: claimed)
        let status: String
        do {
            return (try QueueCoding.decoder().decode(QueuedEmail.self, from: Data(bytes)), lock)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            status = "invalid_json"
        } catch {
            logger.debug("queue entry does not decode", metadata: ["error": "\(error)"])
            status = "invalid_entry"
        }
        try moveToTrash(base, status: status, at: now)
        lock.release()
        logger.error("queue file set aside in the trash", metadata: ["file": "\(base)", "reason": "\(status)"])
        return nil
    }

    /// Ends a claim by renaming the claimed file back to pending. The lock is dropped first:
    /// a claimant who renames the pending file again must be able to lock it.
    private func putBack(_ base: String, lock: ClaimLock?) throws {
        lock?.release()
        _ = try putBackUnlessGone(base)
    }

    /// Renames claimed -> pending without replacing; false when the claim is gone.
    private func putBackUnlessGone(_ base: String) throws -> Bool {
        try Self.renameNoReplace(path(QueueLayout.claimedName(base)), path(QueueLayout.pendingName(base)), tolerating: [ENOENT])
    }

    /// `Syscall.renameNoReplace`, returning false instead of throwing for the `tolerated` errnos.
    private static func renameNoReplace(_ from: String, _ to: String, tolerating tolerated: [Int32]) throws -> Bool {
        do {
            try Syscall.renameNoReplace(from, to)
            return true
        } catch {
            if tolerated.contains(error.errno) { return false }
            throw error
        }
    }

    /// Called with `synchronizing` held: another claimant may have just re-read the directory.
    private func refreshIfStale() throws {
        if needsSynchronizing { try synchronize() }
    }

    private var needsSynchronizing: Bool {
        state.withLock { $0.stale || !$0.notified }
    }

    /// Brings the index up to date with the directory: lists it, and reads the files the
    /// index does not know yet. Names the index has but the directory lost are dropped
    /// lazily, when their rename fails. The index stays stale until the listing is read, so
    /// claimants with an empty index wait for it; an `invalidate()` during the listing
    /// leaves it stale for the next claim.
    private func synchronize() throws {
        let invalidations = state.withLock { $0.invalidations }
        for base in try Syscall.listDirectory(layout.queue).compactMap(QueueLayout.pendingBase) {
            addToIndex(base)
        }
        state.withLock { if $0.invalidations == invalidations { $0.stale = false } }
    }

    /// Reads a pending file's priority and due time into the index. A file that does not
    /// decode is indexed as normal priority, due now, so the claim that reads it sets it
    /// aside. A file already gone (claimed meanwhile) is skipped.
    private func addToIndex(_ base: String) {
        struct Fields: Decodable {
            var priority: Int?
            var next_attempt_at: Date?
        }
        guard !state.withLock({ $0.index.contains(base) }),
              let bytes = try? Syscall.readFile(path(QueueLayout.pendingName(base))) else { return }
        let fields = try? QueueCoding.decoder().decode(Fields.self, from: Data(bytes))
        state.withLock { $0.index.insert(base, priority: fields?.priority ?? 2, notBefore: fields?.next_attempt_at) }
    }

    /// Ends a claim in the trash. Not fsynced, as postfix does not sync the removal of a
    /// delivered queue file: the kernel writes the rename out within seconds, and if power
    /// fails before that the claim comes back and the email is sent again (with the same
    /// Message-ID), never lost. A sync here cost one disk flush per delivered email, which
    /// capped delivery at this disk's sync rate whatever the number of workers.
    private func moveToTrash(_ base: String, status: String, at date: Date) throws {
        try Syscall.rename(
            path(QueueLayout.claimedName(base)),
            layout.trash + "/" + QueueLayout.trashName(base, status: status, at: date))
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
