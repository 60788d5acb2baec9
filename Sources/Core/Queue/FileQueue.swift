import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The queue as one JSON file per email under `data/` (see `QueueLayout` for the states).
///
/// Ownership of a claim is decided by rename(2): of several threads or processes renaming
/// the same pending file, exactly one succeeds. The list of pending names is cached and
/// re-read from the directory only when it may have changed (the seed's dirty flag): after
/// this process's own put-backs, or when `invalidate()` is called by a directory watcher.
public final class FileQueue: QueueStore {
    public let layout: QueueLayout
    public let retry: RetryPolicy
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        /// Pending base names not yet tried, sorted so that `popLast` is the next in line.
        var candidates: [String] = []
        var dirty = true
    }

    /// - Throws: `SystemError` if the folders cannot be created.
    public init(layout: QueueLayout, retry: RetryPolicy = RetryPolicy(),
                logger: Logger = Logger(label: "queue")) throws {
        self.layout = layout
        self.retry = retry
        self.logger = logger
        try layout.create()
    }

    /// Marks the cached index stale; the next claim re-reads the directory.
    public func invalidate() {
        state.withLock { $0.dirty = true }
    }

    public func enqueue(_ email: QueuedEmail) throws {
        guard let base = RequestID.fileBaseName(for: email.requestID) else {
            throw QueueError.invalidRequestID(email.requestID)
        }
        let data = try QueueCoding.encoder().encode(email)
        try AtomicFile.write(data, to: QueueLayout.pendingName(base), in: layout.queue)
        invalidate()
    }

    public func claim(now: Date) throws -> QueueClaim? {
        var deferredAny = false
        var scanned = false
        while let base = try nextCandidate(scanned: &scanned) {
            let pending = layout.queue + "/" + QueueLayout.pendingName(base)
            let claimed = layout.queue + "/" + QueueLayout.claimedName(base)
            if !(try Self.renameUnlessGone(pending, claimed)) { continue }  // another claimant won
            guard let email = try readClaimed(base, at: now) else { continue }
            if let due = email.nextAttemptAt, due > now {
                try Syscall.rename(claimed, pending)
                deferredAny = true
                continue
            }
            return QueueClaim(name: base, email: email)
        }
        // Deferred files went back under their pending name; they are candidates again
        // once their time comes, so the next claim re-reads the directory.
        if deferredAny { invalidate() }
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
        try release(claim)
        return .deferred(until: due)
    }

    public func release(_ claim: QueueClaim) throws {
        try Syscall.rename(
            layout.queue + "/" + QueueLayout.claimedName(claim.name),
            layout.queue + "/" + QueueLayout.pendingName(claim.name))
        try Syscall.fsyncDirectory(layout.queue)
        invalidate()
    }

    /// Puts every claim back to pending (claims left by a crashed run), and removes temp
    /// files abandoned mid-write. Returns how many claims were put back.
    /// - Throws: `SystemError` when the queue directory cannot be read or renamed in.
    @discardableResult
    public func recoverClaims() throws -> Int {
        var recovered = 0
        for name in try Syscall.listDirectory(layout.queue) {
            if AtomicFile.isTemporary(name) {
                _ = Glibc.unlink(layout.queue + "/" + name)
            } else if let base = QueueLayout.claimedBase(name) {
                try Syscall.rename(
                    layout.queue + "/" + name,
                    layout.queue + "/" + QueueLayout.pendingName(base))
                recovered += 1
            }
        }
        if recovered > 0 { try Syscall.fsyncDirectory(layout.queue) }
        invalidate()
        return recovered
    }

    // MARK: - Internals

    /// The next pending name to try. Re-reads the directory when the cache is stale or used
    /// up, but at most once per claim (`scanned`), so files found not due end the claim.
    private func nextCandidate(scanned: inout Bool) throws -> String? {
        let needsScan = state.withLock { $0.dirty || $0.candidates.isEmpty }
        if needsScan && !scanned {
            scanned = true
            let names = try Syscall.listDirectory(layout.queue).compactMap(QueueLayout.pendingBase)
            // Names start with the millisecond timestamp of the same width until 2286, so
            // descending order puts the oldest last, where popLast takes it.
            let sorted = names.sorted(by: >)
            state.withLock {
                $0.candidates = sorted
                $0.dirty = false
            }
        }
        return state.withLock { $0.candidates.popLast() }
    }

    /// Reads a claimed file; a file that is not a valid entry goes to the trash annotated,
    /// and nil is returned so the caller moves on.
    private func readClaimed(_ base: String, at date: Date) throws -> QueuedEmail? {
        let path = layout.queue + "/" + QueueLayout.claimedName(base)
        let bytes = try Syscall.readFile(path)
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
