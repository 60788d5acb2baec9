import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// Where an email stands, as `GET /email/{request_id}` answers it (the raw values).
public enum EmailState: String, Codable, Sendable, CaseIterable {
    /// Waiting for its `send_at`.
    case scheduled
    /// Waiting for a worker, never attempted.
    case queued
    /// Attempted, failed for now, waiting for its next attempt.
    case deferred
    /// Claimed by a worker: being sent.
    case sending
    /// Delivered to every recipient.
    case sent
    /// Delivered to some recipients and refused for good to the others.
    case partiallySent = "partially_sent"
    /// Given up: permanently refused, retries exhausted, or expired.
    case deadLetter = "dead_letter"
    /// Canceled by the client before it was sent.
    case canceled
    /// Kept out of delivery by an operator (`mailctl hold`) until released.
    case held

    /// Whether the email can still change state without an operator.
    public var isFinal: Bool {
        switch self {
        case .sent, .partiallySent, .deadLetter, .canceled: true
        case .scheduled, .queued, .deferred, .sending, .held: false
        }
    }
}

/// One email found by its request id: its state, the stored email (with its attempts and
/// recipients' outcomes), and what the state's entry adds.
public struct EmailRecord: Sendable {
    public var state: EmailState
    public var email: QueuedEmail
    /// When it reached a final state (filed in the trash or dead letters), if it did.
    public var finishedAt: Date?
    /// For a dead letter: why, and its kind.
    public var deadLetter: (reason: String, kind: DeadLetterKind)?

    public init(
        state: EmailState,
        email: QueuedEmail,
        finishedAt: Date? = nil,
        deadLetter: (reason: String, kind: DeadLetterKind)? = nil
    ) {
        self.state = state
        self.email = email
        self.finishedAt = finishedAt
        self.deadLetter = deadLetter
    }

    /// The state of an email waiting in the queue at `now`: `scheduled` while its `send_at`
    /// is ahead and it was never attempted, `deferred` once attempted, else `queued`.
    public static func waitingState(of email: QueuedEmail, now: Date) -> EmailState {
        if let due = email.nextAttemptAt, due > now, email.retryCount == 0, email.sendAt != nil { return .scheduled }
        return email.retryCount > 0 ? .deferred : .queued
    }
}

/// What `cancel` did.
public enum CancelOutcome: Sendable {
    /// Canceled now; the record is the email in its new state.
    case canceled(EmailRecord)
    /// Not cancelable in this state (being sent, or finished); the record says where it is.
    case notCancelable(EmailRecord)
    /// No email has this id.
    case notFound
}

extension FileQueue {
    /// The email with request id `requestID`, found from the names its id leads to in each
    /// folder (no listing): `queue/B.json`, `queue/active/B.processing.json`,
    /// `queue/active/B.sent.json`, `trash/B.sent.json`, `trash/B.canceled.json`,
    /// `held/B.json`, `dead_letter/B.json`. An email moving between folders while it is looked for is looked
    /// for again. Trash entries stay findable until `TRASH_RETENTION_DAYS` prunes them.
    /// - Returns: nil when no folder holds it (or `requestID` is not a UUIDv7).
    /// - Throws: `SystemError` when a file that exists cannot be read.
    public func lookup(requestID: String, now: Date = Date()) throws -> EmailRecord? {
        guard let base = RequestID.fileBaseName(for: requestID) else { return nil }
        for _ in 0..<3 {
            if let record = try find(base, now: now) {
                return record.email.requestID.lowercased() == requestID.lowercased() ? record : nil
            }
        }
        return nil
    }

    /// Cancels a scheduled, queued, deferred or held email: one rename, `queue/B.json` (or
    /// `held/B.json`) to
    /// `trash/B.canceled.json`, decides it against a worker's claim (the same rename from the
    /// same name): exactly one of them wins. The rename is fsynced in both folders before
    /// this returns, so a cancel answered is not undone by a power cut.
    /// - Throws: `SystemError` from the rename or the syncs.
    public func cancel(requestID: String, now: Date = Date()) throws -> CancelOutcome {
        guard let base = RequestID.fileBaseName(for: requestID) else { return .notFound }
        while true {
            guard let record = try lookup(requestID: requestID, now: now) else { return .notFound }
            let from: String
            switch record.state {
            case .scheduled, .queued, .deferred: from = path(QueueLayout.pendingName(base))
            case .held: from = layout.held + "/" + QueueLayout.pendingName(base)
            case .sending, .sent, .partiallySent, .deadLetter, .canceled: return .notCancelable(record)
            }
            let canceled = layout.trash + "/" + QueueLayout.trashName(base, status: .canceled)
            do {
                try Syscall.rename(from, canceled)
            } catch {
                if error.errno == ENOENT { continue }  // claimed (or rewritten) meanwhile: look again
                throw error
            }
            try Syscall.fsyncDirectory(layout.trash)
            try Syscall.fsyncDirectory(record.state == .held ? layout.held : layout.queue)
            var done = record
            done.state = .canceled
            done.finishedAt = now
            return .canceled(done)
        }
    }

    /// One pass over the names `base` can have, in the order an email moves through them.
    func find(_ base: String, now: Date) throws -> EmailRecord? {
        if let email = try readEntry(path(QueueLayout.pendingName(base))) {
            return EmailRecord(state: EmailRecord.waitingState(of: email, now: now), email: email)
        }
        if let email = try readEntry(path(QueueLayout.claimedName(base))) {
            return EmailRecord(state: .sending, email: email)
        }
        for file in [path(QueueLayout.sentName(base)), layout.trash + "/" + QueueLayout.trashName(base, status: .sent)]
        {
            if let email = try readEntry(file) {
                let refused = email.recipients?.contains { $0.state == .failed } ?? false
                return EmailRecord(
                    state: refused ? .partiallySent : .sent,
                    email: email,
                    finishedAt: Syscall.changeTime(file)
                )
            }
        }
        let canceled = layout.trash + "/" + QueueLayout.trashName(base, status: .canceled)
        if let email = try readEntry(canceled) {
            return EmailRecord(state: .canceled, email: email, finishedAt: Syscall.changeTime(canceled))
        }
        let heldPath = layout.held + "/" + QueueLayout.pendingName(base)
        if let email = try readEntry(heldPath) {
            return EmailRecord(state: .held, email: email)
        }
        let letterPath = layout.deadLetter + "/" + QueueLayout.pendingName(base)
        if let bytes = try readBytes(letterPath) {
            let letter = try QueueCoding.decode(DeadLetter.self, from: bytes)
            var email = letter.email
            email.attempts = letter.attempts
            return EmailRecord(
                state: .deadLetter,
                email: email,
                finishedAt: letter.failedAt,
                deadLetter: (letter.reason, letter.kind)
            )
        }
        return nil
    }

    /// The email in the file at `path`, or nil when there is no such file (or it is not one
    /// we wrote: a link, not a regular file, too large).
    func readEntry(_ path: String) throws -> QueuedEmail? {
        guard let bytes = try readBytes(path) else { return nil }
        return try QueueCoding.decode(QueuedEmail.self, from: bytes)
    }

    func readBytes(_ path: String) throws -> [UInt8]? {
        let fd: Int32
        do {
            fd = try Syscall.openRegular(path, followSymlinks: false)
        } catch {
            if error.errno == ENOENT || error.errno == ELOOP || error.errno == ENOTDIR { return nil }
            throw error
        }
        defer { _ = Glibc.close(fd) }
        let info = try Syscall.fileStatus(fd, path: path)
        guard info.st_size <= QueueLayout.maxEntryBytes else { return nil }
        return try Syscall.readAll(fd, path: path)
    }
}
