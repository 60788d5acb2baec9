import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// What an operator's command did to one email (`mailctl`).
public enum AdminOutcome: Sendable {
    /// Done; the record is the email in its new state (for a delete: as it was).
    case done(EmailRecord)
    /// Not possible in the email's state (e.g. deleting one being sent); the record says where it is.
    case notInState(EmailRecord)
    /// No email has this id.
    case notFound
}

/// The operator's operations on the file queue (`mailctl`). Each changes an email's state by
/// the same means as the daemons, so it never races a worker into a duplicate: a rename from
/// the pending name (which a worker's claim renames too: exactly one wins), or a claim of its own.
extension FileQueue {
    /// Every email in `states`, or every one not finished (not sent or canceled) when nil, in
    /// name order (the order they were accepted). Read from the folders, so it costs a read
    /// of each file listed.
    /// - Throws: `SystemError` when a folder cannot be listed.
    public func list(states: Set<EmailState>?, now: Date) throws -> [EmailRecord] {
        let wanted = states ?? [.scheduled, .queued, .deferred, .sending, .held, .deadLetter]
        var bases: Set<String> = []
        func add(_ folder: String, _ base: (String) -> String?) throws {
            for name in (try? Syscall.listDirectory(folder)) ?? [] { if let b = base(name) { bases.insert(b) } }
        }
        if !wanted.isDisjoint(with: [.scheduled, .queued, .deferred]) {
            try add(layout.queue, QueueLayout.pendingBase)
        }
        if wanted.contains(.sending) { try add(layout.active, QueueLayout.claimedBase) }
        if wanted.contains(.held) { try add(layout.held, QueueLayout.pendingBase) }
        if wanted.contains(.deadLetter) {
            // Not a requeue's marker (`B.requeuing.json`): that email is no longer a dead letter.
            try add(layout.deadLetter) { $0.hasSuffix(".requeuing.json") ? nil : QueueLayout.pendingBase($0) }
        }
        if !wanted.isDisjoint(with: [.sent, .partiallySent, .canceled]) {
            try add(layout.trash) { name in
                [TrashStatus.sent, .canceled].lazy.compactMap { status in
                    name.hasSuffix(".\(status.rawValue).json")
                        ? String(name.dropLast(".\(status.rawValue).json".count)) : nil
                }.first
            }
        }
        // One read of each file; an entry that cannot be read (a directory, a FIFO: not ours)
        // is left out rather than failing the whole listing.
        return bases.sorted().compactMap { base in
            guard let record = try? find(base, now: now) else { return nil }
            return wanted.contains(record.state) ? record : nil
        }
    }

    /// Keeps a scheduled, queued or deferred email out of delivery (postsuper -h): one rename,
    /// `queue/B.json` to `held/B.json`, which a worker's claim of the same name cannot also win.
    public func hold(requestID: String, now: Date) throws -> AdminOutcome {
        try moveWaiting(requestID, now: now, allowed: [.scheduled, .queued, .deferred], state: .held) { base in
            (path(QueueLayout.pendingName(base)), layout.held + "/" + QueueLayout.pendingName(base))
        }
    }

    /// Puts a held email back in the queue as it was (postsuper -H): `held/B.json` to
    /// `queue/B.json`; mailworkerd's watch sees it arrive.
    public func releaseHeld(requestID: String, now: Date) throws -> AdminOutcome {
        try moveWaiting(requestID, now: now, allowed: [.held], state: .queued) { base in
            (layout.held + "/" + QueueLayout.pendingName(base), path(QueueLayout.pendingName(base)))
        }
    }

    private func moveWaiting(
        _ requestID: String,
        now: Date,
        allowed: Set<EmailState>,
        state: EmailState,
        paths: (String) -> (from: String, to: String)
    ) throws -> AdminOutcome {
        guard let base = RequestID.fileBaseName(for: requestID) else { return .notFound }
        while true {
            guard let record = try lookup(requestID: requestID, now: now) else { return .notFound }
            guard allowed.contains(record.state) else { return .notInState(record) }
            if let claimed = inFlight(base, record) { return .notInState(claimed) }
            let (from, to) = paths(base)
            do {
                try Syscall.renameNoReplace(from, to)
            } catch {
                if error.errno == ENOENT { continue }  // claimed or moved meanwhile: look again
                throw error
            }
            try Syscall.fsyncDirectory((to as NSString).deletingLastPathComponent)
            try Syscall.fsyncDirectory((from as NSString).deletingLastPathComponent)
            // The state it is in now, as a lookup sees it (a released email may be scheduled).
            var moved = try lookup(requestID: requestID, now: now) ?? record
            if moved.state == record.state { moved.state = state }
            return .done(moved)
        }
    }

    /// The record as `sending` when a claim of `base` also exists: a worker holds it, or one
    /// died after writing the new pending copy and before removing its claim, which recovery
    /// then puts back. Holding or deleting the pending copy would not stop that claim.
    private func inFlight(_ base: String, _ record: EmailRecord) -> EmailRecord? {
        guard [.scheduled, .queued, .deferred].contains(record.state),
            Syscall.entryStatus(path(QueueLayout.claimedName(base))) != nil
        else { return nil }
        var sending = record
        sending.state = .sending
        return sending
    }

    /// Makes a deferred email due now (postqueue -f, one email): it is claimed as a worker
    /// claims it, and put back with no next-attempt time by the worker's own `markFailed`.
    public func flush(requestID: String, now: Date) throws -> AdminOutcome {
        guard let base = RequestID.fileBaseName(for: requestID) else { return .notFound }
        while true {
            guard let record = try lookup(requestID: requestID, now: now) else { return .notFound }
            guard record.state == .deferred else { return .notInState(record) }
            guard let (email, lock) = try take(base, at: now) else { continue }  // a worker took it
            var due = email
            due.nextAttemptAt = nil
            try markFailed(
                QueueClaim(name: base, email: email, token: lock),
                updated: due,
                decision: .retry(notBefore: nil)
            )
            var flushed = record
            flushed.email = due
            return .done(flushed)
        }
    }

    /// Puts a dead letter back in the queue with its retries reset (`retry_count` 0,
    /// `requeued_at` now, so `MAX_QUEUE_LIFETIME` counts afresh); its attempts are kept.
    /// Steps: `dead_letter/B.json` renamed to `dead_letter/B.requeuing.json` (no longer a dead
    /// letter: of two requeues racing, one wins this rename), the marker locked (flock), the
    /// email written as `queue/B.json` unless some folder already holds it, the marker removed.
    /// A requeue killed between them is finished by running it again: the marker is found
    /// unlocked, and the email is written only if no folder holds it yet, so it is never
    /// queued twice; while one process completes a marker, another leaves it alone.
    public func requeue(requestID: String, now: Date) throws -> AdminOutcome {
        guard let base = RequestID.fileBaseName(for: requestID) else { return .notFound }
        let letter = layout.deadLetter + "/" + QueueLayout.pendingName(base)
        let marker = layout.deadLetter + "/" + base + ".requeuing.json"
        let interrupted = Syscall.entryStatus(marker) != nil
        let record = try lookup(requestID: requestID, now: now)
        if !interrupted, let record, record.state != .deadLetter { return .notInState(record) }
        if record?.state == .deadLetter {
            do {
                try Syscall.renameNoReplace(letter, marker)
            } catch {
                if error.errno == ENOENT {
                    return try lookup(requestID: requestID, now: now).map(AdminOutcome.notInState) ?? .notFound
                }
                if error.errno != EEXIST { throw error }
                try Syscall.unlink(letter)  // an earlier requeue's marker holds the same email
            }
            try Syscall.fsyncDirectory(layout.deadLetter)
        }
        // The marker's lock makes one process the one that completes it.
        let fd: Int32
        do {
            fd = try Syscall.openRegular(marker, followSymlinks: false)
        } catch {
            if error.errno == ENOENT {  // completed by another requeue meanwhile
                return try lookup(requestID: requestID, now: now).map(AdminOutcome.done) ?? .notFound
            }
            throw error
        }
        defer { _ = Glibc.close(fd) }
        guard try Syscall.tryLock(fd, path: marker), Syscall.names(marker, file: fd) else {
            // Another process is completing it, or has just removed it.
            return try lookup(requestID: requestID, now: now).map(AdminOutcome.done) ?? .notFound
        }
        let bytes = try Syscall.readAll(fd, path: marker)
        let dead = try QueueCoding.decode(DeadLetter.self, from: bytes)
        guard dead.email.requestID.lowercased() == requestID.lowercased() else { return .notFound }
        if let elsewhere = try lookup(requestID: requestID, now: now) {
            // Written before a crash (and perhaps delivered since): finish by removing the marker.
            try Syscall.unlink(marker)
            return .done(elsewhere)
        }
        var email = dead.email
        email.attempts = dead.attempts
        email = email.requeued(at: now)
        CrashPoint.reach("requeue.before-write")
        try AtomicFile.write(
            try QueueCoding.encoder().encode(email),
            to: QueueLayout.pendingName(base),
            in: layout.queue,
            replacing: false
        )
        CrashPoint.reach("requeue.before-unlink-marker")
        try Syscall.unlink(marker)
        return .done(EmailRecord(state: .queued, email: email))
    }

    /// Request ids of the requeue markers (`dead_letter/B.requeuing.json`) a killed requeue left.
    public func interruptedRequeues() throws -> [String] {
        try Syscall.listDirectory(layout.deadLetter).filter { $0.hasSuffix(".requeuing.json") }.sorted().compactMap {
            guard let bytes = try readBytes(layout.deadLetter + "/" + $0) else { return nil }
            return (try? QueueCoding.decode(DeadLetter.self, from: bytes))?.email.requestID
        }
    }

    /// Deletes an email that is not being sent: a waiting one by the cancel's rename (so a
    /// worker's claim and the delete never both win) and then its trash entry; a held one or a
    /// dead letter by unlinking it. The record returned is the email as it was.
    public func delete(requestID: String, now: Date) throws -> AdminOutcome {
        guard let base = RequestID.fileBaseName(for: requestID) else { return .notFound }
        guard let record = try lookup(requestID: requestID, now: now) else { return .notFound }
        if let claimed = inFlight(base, record) { return .notInState(claimed) }
        switch record.state {
        case .scheduled, .queued, .deferred, .held:
            switch try cancel(requestID: requestID, now: now) {
            case .canceled:
                try Syscall.unlink(layout.trash + "/" + QueueLayout.trashName(base, status: .canceled))
                return .done(record)
            case .notCancelable(let current): return .notInState(current)
            case .notFound: return .notFound
            }
        case .deadLetter:
            try Syscall.unlink(layout.deadLetter + "/" + QueueLayout.pendingName(base))
            try Syscall.fsyncDirectory(layout.deadLetter)
            return .done(record)
        case .sending, .sent, .partiallySent, .canceled:
            return .notInState(record)
        }
    }
}

extension QueuedEmail {
    /// The email as `requeue` puts a dead letter back: retries reset, due now, its
    /// lifetime counted from `now`, and recipients refused for good tried again. Its attempts
    /// are kept. The same for every store.
    public func requeued(at now: Date) -> QueuedEmail {
        var email = self
        email.retryCount = 0
        email.nextAttemptAt = nil
        email.requeuedAt = now
        email.recipients = email.recipients?.map { outcome in
            var pending = outcome
            if pending.state == .failed { pending.state = .deferred }  // refused for good last time: tried again
            return pending
        }
        return email
    }
}
