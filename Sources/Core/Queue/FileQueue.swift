import Foundation
import HeapModule
import Logging
import MailModel
import Platform
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
/// **Crash windows.** Every state change below is one rename(2), or one atomic write
/// followed by one unlink(2). Each gap between two system calls is named in a comment where
/// it occurs (and, for the e2e suite, by a `CrashPoint`), with what a crash there leaves
/// and how `recoverClaims` resolves it. The rules recovery applies to a claim whose owner
/// is gone:
/// - a dead letter of the same email written since the claim was taken: the email's outcome
///   was recorded; the claim is an outdated copy and is removed;
/// - a pending copy written since the claim was taken (a deferral's rewrite): the pending
///   copy wins and the claim is removed; an older pending copy loses to the claim;
/// - otherwise the claim goes back to pending, to be attempted again.
/// "Since" compares inode change times, which rename(2) sets; a tie counts as since.
///
/// **Strangers.** Queue files are opened with `O_NOFOLLOW | O_NONBLOCK` and must be
/// regular files; claiming never changes a file's metadata, so it needs no ownership. An
/// entry that cannot be handled is renamed into `corrupt/` with the reason in its name
/// (`CorruptReason`), logged, and never pruned; every other email keeps moving.
///
/// **Order.** Which file to try next comes from a `QueueIndex` in memory, so a claim does not
/// scan the directory. The index is brought up to date from a directory listing (reading only
/// files it does not know) when stale: at the first claim, after `invalidate()`, and before
/// every claim when no `QueueWatcher` reports arrivals (`useChangeNotifications()`). It holds
/// at most `QUEUE_ACTIVE_LIMIT` due emails and as many deferred ones; with more pending,
/// those left out are read in, in order of name, by sweeps of the folder read as a stream
/// (see `QueueIndex` and `synchronize`), so memory stays flat however deep the backlog.
public final class FileQueue: QueueStore {
    public let layout: QueueLayout
    /// Intake refuses new emails (`QueueError.insufficientStorage`) when the filesystem has
    /// less than this free (`MIN_FREE_BYTES`, `MIN_FREE_INODES`), so that the worker's own
    /// bookkeeping (deferrals, dead letters, status) still finds room. Zero turns it off.
    public let minimumFree: (bytes: UInt64, inodes: UInt64)
    /// The right side of Message-IDs given to emails converted from the Python service's
    /// queue files (the sender's domain).
    public let messageIDDomain: String
    private let logger: Logger
    /// `/status`'s counts, with its cache of pending files' due times.
    let census: QueueCensus
    /// `data/idempotency/`.
    public let idempotencyKeys: any IdempotencyStore
    public let suppressions: any SuppressionStore
    public let events: any EventStore
    /// Entries recovery or a claim could not handle, nor set aside: name to reason.
    private let unhandled = Mutex<[String: String]>([:])
    private let state: Mutex<State>
    /// Held while the index is re-read from the directory, so that claimants arriving
    /// meanwhile wait for the full index instead of finding it empty and going to sleep.
    private let synchronizing = Mutex(())
    /// The queue directory's fsyncs, shared by the renames made at the same time (group
    /// commit): concurrent enqueues and batches, put-backs.
    let queueDirectory: DirectorySync

    private struct State {
        var index: QueueIndex
        /// Where the current pass over the folder stands: its next sweep offers names after
        /// this one (nil: the next sweep begins a pass).
        var refillAfter: FileKey?
        /// When a deferred email left out last made a pass begin again from the first name.
        var lastRewind: ContinuousClock.Instant?
        /// Old emails outside the index, oldest first, for `claimExpired` (read by name).
        var expiryCandidates: [String] = []
        var stale = true
        /// Counts `invalidate()` calls.
        var invalidations = 0
        var notified = false
    }

    /// Whether this process's enqueues go into the index. mailfcgi never claims, so its
    /// index would only grow, by one entry per email accepted, for the life of the process.
    private let indexesEnqueues: Bool

    /// - Parameters:
    ///   - idempotencyTTL: `IDEMPOTENCY_TTL_HOURS` in seconds.
    ///   - indexesEnqueues: false for a program that never claims (mailfcgi): emails it
    ///     enqueues are not added to its index, which a claim here would then re-read from
    ///     the directory each time.
    ///   - activeLimit: `QUEUE_ACTIVE_LIMIT`, the most due emails the claim index holds, and
    ///     the most deferred ones.
    /// - Throws: `SystemError` if the folders cannot be created or examined,
    ///   `QueueLayoutError.crossesFilesystems` if they are not on one filesystem.
    public init(
        layout: QueueLayout,
        minimumFree: (bytes: UInt64, inodes: UInt64) = (0, 0),
        messageIDDomain: String = "localhost",
        idempotencyTTL: TimeInterval = 86_400,
        indexesEnqueues: Bool = true,
        activeLimit: Int = FileQueue.defaultActiveLimit,
        logger: Logger = Logger(label: "queue")
    ) throws {
        self.indexesEnqueues = indexesEnqueues
        state = Mutex(State(index: QueueIndex(limit: activeLimit)))
        self.layout = layout
        self.minimumFree = minimumFree
        self.messageIDDomain = messageIDDomain
        self.logger = logger
        self.census = QueueCensus(layout: layout)
        self.idempotencyKeys = try IdempotencyKeys(directory: layout.idempotency, ttl: idempotencyTTL)
        self.suppressions = try FileSuppressionList(directory: layout.suppressions)
        self.events = try FileEventLog(directory: layout.events)
        self.queueDirectory = DirectorySync(path: layout.queue)
        try layout.create()
        try layout.checkSingleFilesystem()
    }

    /// `QUEUE_ACTIVE_LIMIT`'s default: at about 60 bytes an entry, 3 MiB of index.
    public static let defaultActiveLimit = 50_000

    /// Entries that could be neither handled nor set aside in `corrupt/` (for example
    /// because the rename failed), as "name: reason", sorted; empty when all is well.
    public var problems: [String] {
        unhandled.withLock { $0.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" } }
    }

    /// From now on the index is trusted between re-reads, because a `QueueWatcher` on the
    /// queue directory reports every arrival and departure through `noteChanges`.
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

    /// Applies what a `QueueWatcher` saw, in its order: arrivals go into the index, and a
    /// pending file that left (canceled, or claimed by another process) leaves it, so that
    /// counts and the next due time do not keep it until a claim fails on it.
    public func noteChanges(_ changes: [QueueWatcher.Change]) {
        // Departures (mostly the workers' own claims) are removed together, one lock for a
        // run of them: the claimants take the same lock for every email.
        var departed: [String] = []
        func removeDeparted() {
            guard !departed.isEmpty else { return }
            state.withLock { state in for base in departed { _ = state.index.remove(base) } }
            departed.removeAll(keepingCapacity: true)
        }
        for change in changes {
            guard let base = QueueLayout.pendingBase(change.name) else { continue }
            if change.departed {
                departed.append(base)
            } else {
                removeDeparted()  // in order: an arrival after a departure of the same name
                addToIndex(base)
            }
        }
        removeDeparted()
    }

    /// When the earliest deferred email becomes due, as far as the index knows.
    public var nextDue: Date? {
        state.withLock { state in
            // A deferred email left out comes due at the wake-up; a sweep owed is due now.
            let now = Date()
            let sweep = state.index.wantsRefill(now: now) ? now : state.index.wakeup
            return [state.index.nextDue, sweep].compactMap { $0 }.min()
        }
    }

    /// Pending emails the claim index holds: at most `QUEUE_ACTIVE_LIMIT` due and as many deferred.
    public var indexHeld: Int {
        state.withLock { $0.index.count }
    }

    /// Pending emails: those in the index and those it left out (counted at its last re-read
    /// and since); and how many of those in the index are deferred (the ones left out were
    /// not read).
    public var indexCounts: (pending: Int, deferred: Int) {
        state.withLock { ($0.index.count + $0.index.outside, $0.index.deferredCount) }
    }

    // MARK: - QueueStore

    public func enqueue(_ email: QueuedEmail) throws {
        guard let base = RequestID.fileBaseName(for: email.requestID) else {
            throw QueueError.invalidRequestID(email.requestID)
        }
        if minimumFree.bytes > 0 || minimumFree.inodes > 0 {
            let free = try Syscall.freeSpace(layout.queue)
            if free.bytes < minimumFree.bytes || free.inodes < minimumFree.inodes {
                throw QueueError.insufficientStorage(freeBytes: free.bytes, freeInodes: free.inodes)
            }
        }
        let data = try QueueCoding.encoder().encode(email)
        // Gaps (crash points `enqueue.*`): before the rename a synced temp file is left,
        // which `recoverClaims` removes after a minute; after it, the email is queued but the
        // client had no answer (a retry of the request makes a second email); before the
        // directory sync a power cut can lose the entry, which is why the answer waits for it.
        // The sync is shared with the enqueues renamed meanwhile (`DirectorySync`), and
        // covers this rename: it began after the rename returned.
        // Never over another email: two ids of one millisecond share a name when their last
        // 32 bits do (`RequestID.fileBaseName`); the caller then takes a new id.
        do {
            try AtomicFile.write(
                data,
                to: QueueLayout.pendingName(base),
                in: layout.queue,
                syncDirectory: false,
                replacing: false,
                crashPoint: "enqueue"
            )
        } catch let error as SystemError where error.errno == EEXIST {
            throw QueueError.nameTaken(email.requestID)
        }
        try queueDirectory.sync()
        guard indexesEnqueues else { return }
        state.withLock { $0.index.insert(base, priority: email.priority, notBefore: email.nextAttemptAt) }
    }

    /// Stores `emails` durably sharing one directory sync (group commit): every file is
    /// written and fsynced under a temp name first, then all are renamed into place, then the
    /// queue directory is fsynced once. All or nothing: a failure while writing removes the
    /// temp files; a failed rename withdraws the emails already renamed, except any a worker
    /// claimed meanwhile, which `QueueError.batchPartlyStored` names (not seen in practice: a
    /// rename within one directory fails only when the directory cannot grow).
    /// - Throws: `QueueError`, `SystemError` or `EncodingError`.
    public func enqueue(batch emails: [QueuedEmail]) throws {
        let bases = try emails.map { email in
            guard let base = RequestID.fileBaseName(for: email.requestID) else {
                throw QueueError.invalidRequestID(email.requestID)
            }
            return base
        }
        var seen: Set<String> = []
        for (email, base) in zip(emails, bases) where !seen.insert(base).inserted {
            throw QueueError.nameTaken(email.requestID)  // two of the batch (`RequestID.distinct` avoids it)
        }
        if minimumFree.bytes > 0 || minimumFree.inodes > 0 {
            let free = try Syscall.freeSpace(layout.queue)
            if free.bytes < minimumFree.bytes || free.inodes < minimumFree.inodes {
                throw QueueError.insufficientStorage(freeBytes: free.bytes, freeInodes: free.inodes)
            }
        }
        let encoder = QueueCoding.encoder()
        let temps = bases.map { path(AtomicFile.temporaryPrefix + "batch-" + QueueLayout.pendingName($0)) }
        var written = 0
        do {
            for (email, temp) in zip(emails, temps) {
                let data = try encoder.encode(email)
                let fd = try Syscall.open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
                written += 1
                defer { _ = Glibc.close(fd) }
                try Array(data).withUnsafeBytes { try Syscall.writeAll(fd, $0, path: temp) }
                try Syscall.fsync(fd, path: temp)
            }
        } catch {
            for temp in temps.prefix(written) { _ = try? Syscall.unlink(temp) }
            throw error
        }
        // Gap (crash point `enqueue-batch.before-renames`): synced temp files only, which
        // recovery removes after a minute; the client had no answer and nothing is queued.
        CrashPoint.reach("enqueue-batch.before-renames")
        var renamed = 0
        do {
            for (email, (base, temp)) in zip(emails, zip(bases, temps)) {
                do {
                    try Syscall.renameNoReplace(temp, path(QueueLayout.pendingName(base)))
                } catch {
                    throw error.errno == EEXIST ? QueueError.nameTaken(email.requestID) : error
                }
                renamed += 1
            }
        } catch {
            for temp in temps.dropFirst(renamed) { _ = try? Syscall.unlink(temp) }
            var claimed: [String] = []
            for (email, base) in zip(emails, bases).prefix(renamed) {
                // Back under a temp name, unless a worker took it already.
                let back = path(AtomicFile.temporaryPrefix + "withdrawn-" + QueueLayout.pendingName(base))
                if (try? Syscall.rename(path(QueueLayout.pendingName(base)), back)) != nil {
                    _ = try? Syscall.unlink(back)
                } else {
                    claimed.append(email.requestID)
                }
            }
            if !claimed.isEmpty { throw QueueError.batchPartlyStored(stored: claimed, cause: "\(error)") }
            throw error
        }
        // Gap (crash point `enqueue-batch.before-directory-sync`): every email is in place
        // but a power cut could still lose entries; the answer waits for the sync.
        CrashPoint.reach("enqueue-batch.before-directory-sync")
        try queueDirectory.sync()
        guard indexesEnqueues else { return }
        state.withLock { state in
            for (email, base) in zip(emails, bases) {
                state.index.insert(base, priority: email.priority, notBefore: email.nextAttemptAt)
            }
        }
    }

    public func claim(now: Date) throws -> QueueClaim? {
        if !indexesEnqueues { invalidate() }  // its own enqueues are not in the index
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
            return QueueClaim(name: base, email: email, token: lock)
        }
        return nil
    }

    public func claimExpired(createdBefore cutoff: Date, now: Date, skipping: Set<String>) throws -> QueueClaim? {
        if needsSynchronizing { try synchronizing.withLock { _ in try refreshIfStale() } }
        let millisecond = Int64((cutoff.timeIntervalSince1970 * 1000).rounded(.down))
        while let base = state.withLock({ $0.index.popOldest(before: millisecond, skipping: skipping) }) {
            guard let (email, lock) = try take(base, at: now) else { continue }
            return QueueClaim(name: base, email: email, token: lock)
        }
        // Emails the index left out (a deeper backlog than QUEUE_ACTIVE_LIMIT): their names
        // say when they were accepted.
        while let base = try nextExpiryCandidate(before: millisecond, skipping: skipping) {
            guard let (email, lock) = try take(base, at: now) else { continue }
            return QueueClaim(name: base, email: email, token: lock)
        }
        return nil
    }

    /// The oldest pending name accepted before `cutoff` (milliseconds) that the index does not
    /// hold: from the names a listing found, kept until used (at most 1,000 a listing, so a
    /// pass of `expireDue` lists the folder once per 1,000 expired emails, and once more to
    /// find there are no more). No listing while the index holds every pending email.
    private func nextExpiryCandidate(before cutoff: Int64, skipping: Set<String>) throws -> String? {
        let kept = state.withLock { state -> String? in
            while !state.expiryCandidates.isEmpty {
                let name = state.expiryCandidates.removeFirst()
                if !skipping.contains(name), !state.index.contains(name) { return name }
            }
            return nil
        }
        if let kept { return kept }
        guard state.withLock({ $0.index.incomplete }) else { return nil }
        var oldest = Heap<FileKey>()
        try Syscall.forEachName(in: layout.queue) { name in
            guard let base = QueueLayout.pendingBase(name), let key = FileKey(base), key.timestamp < cutoff,
                !skipping.contains(base), !state.withLock({ $0.index.contains(base) })
            else { return }
            oldest.insert(key)
            if oldest.count > 1_000 { _ = oldest.removeMax() }
        }
        let names = oldest.unordered.sorted().map(\.name)
        state.withLock { $0.expiryCandidates = Array(names.dropFirst()) }
        return names.first
    }

    public func markSent(_ claim: QueueClaim, record: QueuedEmail?, at date: Date) throws {
        if let record { return try fileRecord(record, of: claim, at: date) }
        // Gap (crash point `sent.before-trash`): the relay has the email, the claim is still
        // in active/. Recovery puts it back and it is sent again, with the same Message-ID:
        // the one window in which an email can be sent twice. A failure of the rename itself
        // is not such a crash: the outcome is then recorded as `active/B.sent.json` (below),
        // and only when that fails too does the caller keep the claim locked and retry.
        // The move is not fsynced, as postfix does not sync the removal of a delivered queue
        // file: the kernel writes it out within seconds, and if power fails before that the
        // claim comes back and is sent again (same Message-ID), never lost. A sync here cost
        // one disk flush per email, which capped delivery at the disk's sync rate.
        CrashPoint.reach("sent.before-trash")
        let trashed = layout.trash + "/" + QueueLayout.trashName(claim.name, status: .sent)
        let claimed = path(QueueLayout.claimedName(claim.name))
        let unfiled = path(QueueLayout.sentName(claim.name))
        guard let lock = claim.lock else {
            try Syscall.rename(claimed, trashed)
            return
        }
        if lock.names(unfiled) {  // an earlier call recorded the outcome but could not file it
            try Syscall.rename(unfiled, trashed)
            lock.release()
            return
        }
        if lock.names(claimed) {
            guard let failure = Self.failure(of: { () throws(SystemError) in try Syscall.rename(claimed, trashed) })
            else {
                lock.release()
                return
            }
            // ENOENT is ambiguous: our claim was moved away (a CLAIM_TIMEOUT sweep), or the
            // trash folder is gone (an operator removed it). Only the first means the claim is lost.
            if failure.errno != ENOENT || lock.names(claimed) {
                if failure.errno == ENOENT, (try? layout.create()) != nil,  // the trash, recreated
                    (try? Syscall.rename(claimed, trashed)) != nil
                {
                    lock.release()
                    return
                }
                // Record the outcome first, file it later: a rename within active/ needs no
                // other folder (it works when the trash is full, read-only or elsewhere), and
                // an entry under this name is moved to the trash by recovery (at the next
                // sweep or start, once the lock is dropped here), never resent.
                guard (try? Syscall.rename(claimed, unfiled)) != nil else { throw failure }
                lock.release()
                logger.warning(
                    "delivered email kept in queue/active/ as sent until the trash takes it",
                    metadata: ["file": "\(claim.name)", "error": "\(failure)"]
                )
                return
            }
        }
        throw claimLost(claim, lock: lock, sentAt: date)
    }

    /// The error `body` threw, or nil when it succeeded.
    private static func failure(of body: () throws(SystemError) -> Void) -> SystemError? {
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }

    /// Our file is under neither claim name: a `CLAIM_TIMEOUT` sweep put it back to pending
    /// while it was being sent. If it is still pending, it goes to the trash (when it was
    /// delivered) so that nobody sends it again; if another claimant took it, it may be sent
    /// twice, which is what the timeout allows.
    /// - Returns: `QueueError.claimLost`, for the caller to throw.
    private func claimLost(_ claim: QueueClaim, lock: ClaimLock, sentAt: Date?) -> QueueError {
        let pending = path(QueueLayout.pendingName(claim.name))
        let sent = layout.trash + "/" + QueueLayout.trashName(claim.name, status: .sent)
        let canceled = layout.trash + "/" + QueueLayout.trashName(claim.name, status: .canceled)
        if sentAt != nil, lock.names(pending) {
            _ = try? Syscall.rename(pending, sent)
        } else if sentAt != nil, lock.names(canceled) {
            // Put back, then canceled by the client, while this send was still going: the
            // relay has it, so the record says sent, not canceled.
            _ = try? Syscall.rename(canceled, sent)
            logger.warning(
                "an email canceled after its claim was put back had been delivered; filed as sent",
                metadata: ["file": "\(claim.name)"]
            )
        }
        lock.release()
        logger.warning(
            "claim was put back while it was being attempted (CLAIM_TIMEOUT); its outcome is not recorded",
            metadata: ["file": "\(claim.name)"]
        )
        return QueueError.claimLost(claim.name)
    }

    public func markFailed(_ claim: QueueClaim, updated email: QueuedEmail, decision: FailureDecision) throws {
        if let lock = claim.lock, !lock.names(path(QueueLayout.claimedName(claim.name))) {
            throw claimLost(claim, lock: lock, sentAt: nil)
        }
        // Calling this again after it threw is safe: both writes below replace what a failed
        // call left, and the caller hands the same updated email again.
        switch decision {
        case .deadLetter(let reason, let kind, let date):
            let letter = DeadLetter(reason: reason, kind: kind, failedAt: date, attempts: email.attempts, email: email)
            // Gaps (crash points `dead-letter.*`): before the rename, the claim alone (a
            // synced temp file in dead_letter/ is removed by recovery); after it, the dead
            // letter and the claim: recovery sees a dead letter newer than the claim and
            // removes the claim. Neither the directory sync nor the unlink needs to survive
            // a power cut for the same reason.
            try AtomicFile.write(
                try QueueCoding.encoder().encode(letter),
                to: QueueLayout.pendingName(claim.name),
                in: layout.deadLetter,
                crashPoint: "dead-letter"
            )
            CrashPoint.reach("dead-letter.before-unlink-claim")
            try unlinkClaim(claim)
        case .retry(let due):
            // The new version appears under the pending name while the locked claim still
            // exists, so no other claimant can take it until the claim is unlinked (its rename
            // into active/ fails with EEXIST).
            // Gaps (crash points `defer.*`): before the rename, the claim alone, which recovery
            // puts back with its old count (one attempt more than planned, never fewer); after
            // it, the new pending copy and the claim: the pending copy is newer and wins, the
            // claim is removed. So the unlink needs no directory sync.
            try AtomicFile.write(
                try QueueCoding.encoder().encode(email),
                to: QueueLayout.pendingName(claim.name),
                in: layout.queue,
                crashPoint: "defer"
            )
            CrashPoint.reach("defer.before-unlink-claim")
            try unlinkClaim(claim)
            state.withLock { $0.index.insert(claim.name, priority: email.priority, notBefore: due) }
        }
    }

    /// `markSent` with the recipients' outcomes to keep: the record is written as the "sent
    /// but unfiled" entry `active/B.sent.json` beside the claim, the claim is removed, and
    /// the entry moves to the trash.
    /// Gaps (crash points `sent-record.*`): before the entry's rename, the claim alone,
    /// which recovery puts back and which is sent again to the recipients it lists as pending
    /// (the window `sent.before-trash` has too); after it, the entry and the claim: recovery
    /// sees the entry newer than the claim, removes the claim and files the entry, so nobody
    /// receives it twice. The entry is unlocked: a recovery sweep meanwhile may file it first.
    private func fileRecord(_ record: QueuedEmail, of claim: QueueClaim, at date: Date) throws {
        if let lock = claim.lock, !lock.names(path(QueueLayout.claimedName(claim.name))) {
            throw claimLost(claim, lock: lock, sentAt: date)
        }
        let sentFile = QueueLayout.sentName(claim.name)
        try AtomicFile.write(
            try QueueCoding.encoder().encode(record),
            to: String(sentFile.dropFirst("active/".count)),
            in: layout.active,
            crashPoint: "sent-record"
        )
        CrashPoint.reach("sent-record.before-unlink-claim")
        try unlinkClaim(claim)
        let trashed = layout.trash + "/" + QueueLayout.trashName(claim.name, status: .sent)
        do {
            try Syscall.rename(path(sentFile), trashed)
        } catch {
            // Filed by a recovery sweep already (ENOENT), or the trash cannot take it now:
            // the entry stays in active/ and the next sweep files it; never sent again.
            if error.errno != ENOENT {
                logger.warning(
                    "delivered email kept in queue/active/ as sent until the trash takes it",
                    metadata: ["file": "\(claim.name)", "error": "\(error)"]
                )
            }
        }
    }

    public func release(_ claim: QueueClaim) throws {
        // One rename; a crash before the directory sync leaves the claim, unlocked, which
        // recovery puts back the same way.
        try putBack(claim.name, lock: claim.lock)
        try queueDirectory.sync()
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

    /// Resolves every claim whose owner is gone (its file is not locked), by the rules in
    /// this type's comment, and, when `lockedOlderThan` is given, claims whose living owner
    /// has held them longer (`CLAIM_TIMEOUT`: a hung owner; delivery may then happen twice,
    /// never zero times). A claim's age is its inode change time, set by the rename that
    /// claimed it. Also removes temp files abandoned mid-write more than a minute ago, and
    /// sets aside in `corrupt/` what is not a claim.
    ///
    /// Never stops at an entry it cannot handle: the entry is logged, kept in `problems`,
    /// and the others are resolved.
    /// - Returns: how many claims were put back.
    /// - Throws: `SystemError` only when a folder cannot be listed.
    @discardableResult
    public func recoverClaims(lockedOlderThan timeout: TimeInterval?, now: Date) throws -> Int {
        // A folder an operator removed comes back (postfix's queue manager recreates its own).
        try layout.create()
        // Temp files a killed write left (each write's is its own: AtomicFile names them uniquely).
        let alsoWritten = [layout.status, layout.suppressions, layout.events + "/pending", layout.events + "/failed"]
        // The folders are read as streams: the queue's may hold a backlog of millions of names
        // (listed whole, twice a sweep, they were mailworkerd's largest allocation).
        for folder in layout.renameFolders + alsoWritten {
            try? Syscall.forEachName(in: folder) { name in
                guard AtomicFile.isTemporary(name) else { return }
                let file = folder + "/" + name
                if let written = Syscall.modificationTime(file), now.timeIntervalSince(written) > 60 {
                    _ = try? Syscall.unlink(file)
                }
            }
        }
        var recovered = 0
        // The Python service claimed files in place (`queue/B.processing.json`); it no longer
        // runs (the README's switch-over stops it first), so its claims go back to pending.
        try Syscall.forEachName(in: layout.queue) { name in
            guard let base = QueueLayout.claimedBase(name) else { return }
            if (try? Syscall.renameNoReplace(path(name), path(QueueLayout.pendingName(base)))) != nil {
                recovered += 1
                logger.notice("claim of the Python service put back to pending", metadata: ["file": "\(base)"])
            }
        }
        for name in try Syscall.listDirectory(layout.active) where !AtomicFile.isTemporary(name) {
            do {
                if try recoverEntry(name, lockedOlderThan: timeout, now: now) { recovered += 1 }
                forget(name)
            } catch {
                remember(name, "\(error)")
                logger.error("cannot recover a claim; leaving it", metadata: ["file": "\(name)", "error": "\(error)"])
            }
        }
        if recovered > 0 {
            try Syscall.fsyncDirectory(layout.queue)
            invalidate()
        }
        return recovered
    }

    /// Deletes trash files moved there more than `age` seconds ago (their inode change time,
    /// which the rename into the trash sets). Returns how many were deleted. Removals need
    /// no directory sync: a file that comes back after a power cut is deleted next time.
    /// - Throws: `SystemError` when the trash cannot be listed.
    @discardableResult
    public func pruneTrash(olderThan age: TimeInterval, now: Date = Date()) throws -> Int {
        var pruned = 0
        // A stream: the trash keeps TRASH_RETENTION_DAYS of sent mail, millions of names.
        try Syscall.forEachName(in: layout.trash) { name in
            let file = layout.trash + "/" + name
            if let changed = Syscall.changeTime(file), now.timeIntervalSince(changed) > age,
                (try? Syscall.unlink(file)) != nil
            {
                pruned += 1
            }
        }
        return pruned
    }

    /// One entry of `queue/active/`; true when it went back to pending.
    private func recoverEntry(_ name: String, lockedOlderThan timeout: TimeInterval?, now: Date) throws -> Bool {
        let file = layout.active + "/" + name
        let sent = QueueLayout.sentBase(name)
        guard let base = QueueLayout.claimedBase(name) ?? sent else {
            try setAside(name, in: layout.active, reason: .strayEntry, detail: "not a claim's name", at: now)
            return false
        }
        let fd: Int32
        do {
            fd = try Syscall.openRegular(file, followSymlinks: false)
        } catch {
            if error.errno == ENOENT { return false }  // finished or recovered meanwhile
            try setAside(name, in: layout.active, reason: Self.reason(openFailure: error), detail: "\(error)", at: now)
            return false
        }
        let lock = ClaimLock(fd: fd)
        defer { lock.release() }
        guard let claimedAt = Syscall.changeTime(file) else { return false }
        if try !Syscall.tryLock(fd, path: file) {
            // A delivered email is never put back, however long its owner holds it.
            guard sent == nil, let timeout, now.timeIntervalSince(claimedAt) >= timeout else { return false }
            logger.warning("claim held past CLAIM_TIMEOUT; putting it back", metadata: ["file": "\(base)"])
        }
        guard Syscall.names(file, file: fd) else { return false }
        if sent != nil {
            // A claim of the same email whose owner died after recording this delivery
            // (`fileRecord`): removed first, so that it is not put back and sent again.
            let claimFile = path(QueueLayout.claimedName(base))
            if let claimFd = try? Syscall.openRegular(claimFile, followSymlinks: false) {
                let claimLock = ClaimLock(fd: claimFd)
                if (try? Syscall.tryLock(claimFd, path: claimFile)) == true, Syscall.names(claimFile, file: claimFd),
                    let claimed = Syscall.changeTime(claimFile), claimed <= claimedAt
                {
                    try Syscall.unlink(claimFile)
                    logger.notice("claim removed: its delivery was already recorded", metadata: ["file": "\(base)"])
                }
                claimLock.release()
            }
            // Delivered, and the move into the trash failed before: file it now.
            try Syscall.rename(file, layout.trash + "/" + QueueLayout.trashName(base, status: .sent))
            logger.notice("delivered email moved to the trash", metadata: ["file": "\(base)"])
            return false
        }
        // A crash after the outcome was written and before the claim was removed. Only a
        // valid copy of this very email counts as the outcome; anything else under the name
        // is a stranger, set aside, and the claim goes back.
        let sentEntry = layout.active + "/" + String(QueueLayout.sentName(base).dropFirst("active/".count))
        if let written = Syscall.changeTime(sentEntry), written >= claimedAt, holdsEntry(sentEntry, for: base) {
            try Syscall.unlink(file)
            logger.notice("claim removed: its delivery was already recorded", metadata: ["file": "\(base)"])
            return false
        }
        // Canceled by the client after a deferral's rewrite and before the claim's removal:
        // the cancel stands (the rename into the trash set the entry's change time).
        let canceled = layout.trash + "/" + QueueLayout.trashName(base, status: .canceled)
        if let written = Syscall.changeTime(canceled), written >= claimedAt, holdsEntry(canceled, for: base) {
            try Syscall.unlink(file)
            logger.notice("claim removed: the email was canceled", metadata: ["file": "\(base)"])
            return false
        }
        let letter = layout.deadLetter + "/" + QueueLayout.pendingName(base)
        if let written = Syscall.changeTime(letter), written >= claimedAt {
            if holdsEntry(letter, for: base, deadLetter: true) {
                try Syscall.unlink(file)
                logger.notice("claim removed: its dead letter was already written", metadata: ["file": "\(base)"])
                return false
            }
            try setAside(
                QueueLayout.pendingName(base),
                in: layout.deadLetter,
                reason: .invalidEntry,
                detail: "not a dead letter of this email",
                at: now
            )
        }
        let pendingName = QueueLayout.pendingName(base)
        let pending = path(pendingName)
        if let written = Syscall.changeTime(pending) {
            if written >= claimedAt, holdsEntry(pending, for: base) {
                try Syscall.unlink(file)
                logger.notice("claim removed: its deferral was already written", metadata: ["file": "\(base)"])
                return false
            }
            if holdsEntry(pending, for: base) {
                // A valid copy older than the claim (put there by hand): the claim is newer.
                try Syscall.rename(file, pending)
                logger.notice("claim put back over an older pending copy", metadata: ["file": "\(base)"])
                return true
            }
            try setAside(
                pendingName,
                in: layout.queue,
                reason: .invalidEntry,
                detail: "not a copy of this email",
                at: now
            )
        }
        guard try putBackUnlessGone(base) else { return false }
        logger.notice("claim put back to pending", metadata: ["file": "\(base)"])
        return true
    }

    // MARK: - Internals

    func path(_ name: String) -> String { layout.queue + "/" + name }

    /// Claims `base`: rename without replacing, open, lock, check, read. Nil when another
    /// claimant got there first, or the entry is not a valid queue file (it is then set
    /// aside in `corrupt/`). Claiming changes no metadata of the file: it works on files
    /// this process does not own, and never on what a link points to.
    func take(_ base: String, at now: Date) throws -> (QueuedEmail, ClaimLock)? {
        let claimedName = QueueLayout.claimedName(base)
        let claimed = path(claimedName)
        // Gone: claimed by someone else. Exists: its previous claim is still being closed.
        let pending = path(QueueLayout.pendingName(base))
        guard try Self.renameNoReplace(pending, claimed, tolerating: [ENOENT, EEXIST]) else {
            // ENOENT with the pending file still there: queue/active/ itself is missing.
            guard Syscall.entryStatus(pending) != nil, Syscall.entryStatus(layout.active) == nil else { return nil }
            try layout.create()
            guard try Self.renameNoReplace(pending, claimed, tolerating: [ENOENT, EEXIST]) else { return nil }
            return try finishTake(base, claimedName: claimedName, at: now)
        }
        return try finishTake(base, claimedName: claimedName, at: now)
    }

    /// `take` after the rename into `queue/active/`: open, lock, check, read.
    private func finishTake(_ base: String, claimedName: String, at now: Date) throws -> (QueuedEmail, ClaimLock)? {
        let claimed = path(claimedName)
        // Gap (crash point `claim.after-rename`): an unlocked claim, put back by recovery.
        CrashPoint.reach("claim.after-rename")
        let fd: Int32
        do {
            fd = try Syscall.openRegular(claimed, followSymlinks: false)
        } catch {
            if error.errno == ENOENT { return nil }  // a recovery took it back meanwhile
            try setAside(
                claimedName,
                in: layout.queue,
                reason: Self.reason(openFailure: error),
                detail: "\(error)",
                at: now
            )
            return nil
        }
        let lock = ClaimLock(fd: fd)
        guard try Syscall.tryLock(fd, path: claimed), Syscall.names(claimed, file: fd) else {
            lock.release()
            return nil  // a recovery or a newer claimant holds it
        }
        let reason: CorruptReason
        let detail: String
        do {
            let info = try Syscall.fileStatus(fd, path: claimed)
            if info.st_nlink > 1 {
                (reason, detail) = (.hardLink, "\(info.st_nlink) names for one file: each would be sent")
            } else if info.st_size > QueueLayout.maxEntryBytes {
                (reason, detail) = (.tooLarge, "\(info.st_size) bytes, over \(QueueLayout.maxEntryBytes)")
            } else {
                let bytes = try Syscall.readAll(fd, path: claimed)
                if let batch = try? QueueCoding.decode(LegacyBatch.self, from: bytes) {
                    try importLegacy(batch, from: base, claimedName: claimedName, lock: lock, at: now)
                    return nil
                }
                let email = try Self.decodeEntry(bytes)
                guard let problem = email.deliveryProblem else { return (email, lock) }
                (reason, detail) = (.invalidAddress, problem)
            }
        } catch let error as SystemError {
            (reason, detail) = (.unreadable, "\(error)")
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            (reason, detail) = (.invalidJSON, context.debugDescription)
        } catch {
            (reason, detail) = (.invalidEntry, "\(error)")
        }
        try setAside(claimedName, in: layout.queue, reason: reason, detail: detail, at: now)
        lock.release()
        return nil
    }

    /// Converts a claimed queue file of the Python service into one queue file per email,
    /// then removes it. Names are derived from the file's name and each email's index, and
    /// an email whose name is already anywhere in the queue (converted before a crash, and
    /// maybe claimed or delivered since) is not written again: a conversion that is redone
    /// after a crash between writes (crash point `legacy.before-unlink`) sends nothing twice.
    private func importLegacy(
        _ batch: LegacyBatch,
        from base: String,
        claimedName: String,
        lock: ClaimLock,
        at now: Date
    ) throws {
        let trash = (try? Syscall.listDirectory(layout.trash)) ?? []
        var written = 0
        for (index, entry) in batch.emails.enumerated() {
            let name = LegacyEmail.convertedName(base, index: index)
            guard case .success(let legacy) = entry else {
                if case .failure(let unreadable) = entry {
                    // Kept for the operator, like any entry that cannot be handled.
                    let file = QueueLayout.corruptName("\(base).email-\(index).json", reason: .invalidEntry, at: now)
                    try AtomicFile.write(
                        try JSONEncoder().encode(unreadable.json),
                        to: file,
                        in: layout.corrupt,
                        syncDirectory: false
                    )
                    logger.error(
                        "an email of a Python service queue file set aside in corrupt/",
                        metadata: [
                            "file": "\(base)", "index": "\(index)", "detail": "\(unreadable.reason)",
                        ]
                    )
                }
                continue
            }
            let places = [
                path(QueueLayout.pendingName(name)), path(QueueLayout.claimedName(name)),
                path(QueueLayout.sentName(name)), layout.deadLetter + "/" + QueueLayout.pendingName(name),
            ]
            if places.contains(where: { Syscall.entryStatus($0) != nil })
                || trash.contains(where: { $0.hasPrefix(name + ".") })
            {
                continue
            }
            let email = legacy.queued(messageIDDomain: messageIDDomain, now: now)
            try AtomicFile.write(
                try QueueCoding.encoder().encode(email),
                to: QueueLayout.pendingName(name),
                in: layout.queue,
                syncDirectory: false
            )
            state.withLock { $0.index.insert(name, priority: email.priority, notBefore: email.nextAttemptAt) }
            written += 1
        }
        try Syscall.fsyncDirectory(layout.queue)
        CrashPoint.reach("legacy.before-unlink")
        let claimed = path(claimedName)
        if lock.names(claimed) { try Syscall.unlink(claimed) }
        lock.release()
        logger.notice(
            "queue file of the Python service converted",
            metadata: [
                "file": "\(base)", "emails": "\(batch.emails.count)", "written": "\(written)",
            ]
        )
    }

    private static func decodeEntry(_ bytes: [UInt8]) throws -> QueuedEmail {
        try QueueCoding.decode(QueuedEmail.self, from: bytes)
    }

    /// Whether `path` is a regular file of one name, not too large, holding a queue entry
    /// (or, with `deadLetter`, a dead letter) for `base`: only such a copy may replace a
    /// claim in recovery. Anything else under the name is not an outcome of ours.
    private func holdsEntry(_ path: String, for base: String, deadLetter: Bool = false) -> Bool {
        guard let fd = try? Syscall.openRegular(path, followSymlinks: false) else { return false }
        defer { _ = Glibc.close(fd) }
        guard let info = try? Syscall.fileStatus(fd, path: path), info.st_nlink == 1,
            info.st_size <= QueueLayout.maxEntryBytes,
            let bytes = try? Syscall.readAll(fd, path: path)
        else { return false }
        let email =
            deadLetter
            ? (try? QueueCoding.decode(DeadLetter.self, from: bytes))?.email
            : try? Self.decodeEntry(bytes)
        return email.flatMap { RequestID.fileBaseName(for: $0.requestID) } == base
    }

    /// Moves `name` (relative to `folder`) into `corrupt/` under a name that says why, with
    /// one rename (not fsynced: if it is undone by a power cut, it is set aside again).
    /// - Throws: `SystemError` from the rename; the entry is then kept in `problems`.
    private func setAside(_ name: String, in folder: String, reason: CorruptReason, detail: String, at now: Date) throws
    {
        let fileName = name.split(separator: "/").last.map(String.init) ?? name
        let target = layout.corrupt + "/" + QueueLayout.corruptName(fileName, reason: reason, at: now)
        do {
            try Syscall.rename(folder + "/" + name, target)
        } catch {
            remember(fileName, "\(reason.rawValue) (\(detail)); cannot move it to corrupt/: \(error)")
            throw error
        }
        forget(fileName)
        logger.error(
            "queue entry set aside in corrupt/",
            metadata: [
                "file": "\(fileName)", "reason": "\(reason.rawValue)", "detail": "\(detail)",
            ]
        )
    }

    /// The reason for an entry that could not be opened as a regular file.
    private static func reason(openFailure error: SystemError) -> CorruptReason {
        switch error.errno {
        case ELOOP: .symlink
        case EISDIR, EINVAL, ENXIO: .notRegular
        default: .unreadable
        }
    }

    private func remember(_ name: String, _ reason: String) {
        unhandled.withLock { $0[name] = reason }
    }

    private func forget(_ name: String) {
        unhandled.withLock { _ = $0.removeValue(forKey: name) }
    }

    /// Removes the claim after its outcome was written, if the claimed name still points at
    /// the file this claim holds (a claim put back past `CLAIM_TIMEOUT` and taken again
    /// belongs to its new owner), then drops the lock.
    private func unlinkClaim(_ claim: QueueClaim) throws {
        let claimed = path(QueueLayout.claimedName(claim.name))
        if let lock = claim.lock, !lock.names(claimed) {
            lock.release()
            return
        }
        try Syscall.unlink(claimed)
        claim.lock?.release()
    }

    /// Ends a claim by renaming the claimed file back to pending. The lock is dropped first:
    /// a claimant who renames the pending file again must be able to lock it.
    private func putBack(_ base: String, lock: ClaimLock?) throws {
        lock?.release()
        _ = try putBackUnlessGone(base)
    }

    /// Renames claimed -> pending without replacing; false when the claim is gone.
    private func putBackUnlessGone(_ base: String) throws -> Bool {
        try Self.renameNoReplace(
            path(QueueLayout.claimedName(base)),
            path(QueueLayout.pendingName(base)),
            tolerating: [ENOENT]
        )
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
        state.withLock { $0.stale || !$0.notified || $0.index.wantsRefill(now: Date()) }
    }

    /// Brings the index up to date with the directory: one sweep of a pass over it. It lists
    /// the folder as a stream and reads the files the index does not hold, at most
    /// `refillSize` of them, the first by name after where the pass stands; a pass ends when
    /// a sweep offers every name left, so each pending file not held is offered once a pass
    /// (the next begins when the index wants more). A deferred email left out that comes due
    /// makes the pass begin again from the first name, at most once a second. Names the index
    /// has but the directory lost are dropped lazily, when their rename fails. The index stays
    /// stale until the listing is read, so claimants with an empty index wait for it; an
    /// `invalidate()` during the listing leaves it stale for the next claim.
    private func synchronize() throws {
        let (invalidations, size, after) = state.withLock { state in
            if let wakeup = state.index.wakeup, wakeup <= Date(), state.refillAfter != nil,
                state.lastRewind.map({ .now - $0 >= .seconds(1) }) ?? true
            {
                state.refillAfter = nil
                state.lastRewind = .now
            }
            if state.refillAfter == nil { state.index.beginPass() }
            return (state.invalidations, state.index.refillSize, state.refillAfter)
        }
        var offered = Heap<FileKey>()  // the first names not held after `after`, at most `size`
        var unoffered = 0
        var foreign: [String] = []
        try Syscall.forEachName(in: layout.queue) { name in
            guard let base = QueueLayout.pendingBase(name), !state.withLock({ $0.index.contains(base) }) else {
                return
            }
            guard let key = FileKey(base) else { return foreign.append(base) }
            if let after, key <= after { return }  // offered earlier in this pass
            offered.insert(key)
            if offered.count > size {
                _ = offered.removeMax()
                unoffered += 1
            }
        }
        let names = offered.unordered.sorted()
        state.withLock {
            $0.index.endSweep(unoffered: unoffered, passEnded: unoffered == 0)
            $0.refillAfter = unoffered == 0 ? nil : names.last
        }
        for key in names { addToIndex(key.name) }
        for base in foreign { addToIndex(base) }
        state.withLock { if $0.invalidations == invalidations { $0.stale = false } }
    }

    /// Reads a pending file's priority and due time into the index. An entry that cannot be
    /// read or does not decode is indexed as normal priority, due now, so the claim that
    /// reads it sets it aside. A file already gone (claimed meanwhile) is skipped.
    private func addToIndex(_ base: String) {
        struct Fields: Decodable {
            var priority: Int?
            var next_attempt_at: Date?
        }
        guard !state.withLock({ $0.index.contains(base) }) else { return }
        let bytes: [UInt8]
        do {
            bytes = try Syscall.readFile(
                path(QueueLayout.pendingName(base)),
                followSymlinks: false,
                maxBytes: QueueLayout.maxEntryBytes
            )
        } catch {
            if error.errno == ENOENT { return }  // claimed meanwhile
            bytes = []  // a stranger: due now, so the claim that reads it sets it aside
        }
        let fields = try? QueueCoding.decode(Fields.self, from: bytes)
        state.withLock { $0.index.insert(base, priority: fields?.priority ?? 2, notBefore: fields?.next_attempt_at) }
    }
}

/// Errors of the queue's own making (system call failures are `SystemError`).
public enum QueueError: Error, CustomStringConvertible, Equatable {
    /// The email's request id is not a UUIDv7, so no file name can be derived from it.
    case invalidRequestID(String)
    /// The queue's filesystem has less free space or inodes than intake keeps in reserve
    /// (`MIN_FREE_BYTES`, `MIN_FREE_INODES`).
    case insufficientStorage(freeBytes: UInt64, freeInodes: UInt64)
    /// The claim was put back (`CLAIM_TIMEOUT`) while its owner was still attempting it, so
    /// the owner's outcome is not recorded; not worth retrying.
    case claimLost(String)
    /// Another email is stored under the name this request id leads to (same millisecond,
    /// same last 32 bits): nothing was written; store it under a new id.
    case nameTaken(String)
    /// A batch could not be stored whole, and these emails (request ids) of it could not be
    /// withdrawn because a worker had already claimed them.
    case batchPartlyStored(stored: [String], cause: String)

    public var description: String {
        switch self {
        case .invalidRequestID(let id): "request id \(id) is not a UUIDv7"
        case .insufficientStorage(let bytes, let inodes):
            "the queue's filesystem is nearly full (\(bytes) bytes and \(inodes) inodes free)"
        case .claimLost(let name): "the claim on \(name) was put back while it was attempted"
        case .nameTaken(let id): "another email is stored under the file name of request id \(id)"
        case .batchPartlyStored(let stored, let cause):
            "the batch could not be stored whole (\(cause)); already taken for delivery: "
                + stored.joined(separator: ", ")
        }
    }
}
