import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// Where accepted emails wait for delivery. `FileQueue` keeps them as one JSON file each;
/// a database-backed store for several hosts is planned behind the same protocol.
///
/// Every method may be called from any thread and from several processes at once on the same
/// store: a claim is exclusive, so no email is handed to two claimants while nothing crashes.
public protocol QueueStore: Sendable {
    /// Stores `email` durably; when this returns, the email survives a crash.
    /// - Throws: `SystemError` (disk full, permissions) or `EncodingError`; nothing is left behind.
    func enqueue(_ email: QueuedEmail) throws

    /// Takes the next due email, highest priority first and FIFO within a priority.
    /// - Returns: nil when nothing is due at `now`.
    /// - Throws: `SystemError` when the queue directory cannot be read.
    func claim(now: Date) throws -> QueueClaim?

    /// Takes the oldest email accepted before `createdBefore`, due or not, so that an email
    /// past `MAX_QUEUE_LIFETIME` can be given up while delivery is paused. Emails named in
    /// `skipping` (found not expired, having been requeued) are passed over.
    /// - Returns: nil when there is none.
    /// - Throws: `SystemError` when the queue directory cannot be read.
    func claimExpired(createdBefore: Date, now: Date, skipping: Set<String>) throws -> QueueClaim?

    /// The claimed email was delivered (to every recipient, or to some and refused for good
    /// to the others): it leaves the queue for the trash. `record` is the email with its
    /// recipients' outcomes, kept in the trash; nil moves the claimed file as it is.
    func markSent(_ claim: QueueClaim, record: QueuedEmail?, at date: Date) throws

    /// The claimed email was not delivered to everyone: `updated` is it with the attempt
    /// recorded, and `decision` (from `DeliveryPolicy`, not the store) says where it goes.
    func markFailed(_ claim: QueueClaim, updated: QueuedEmail, decision: FailureDecision) throws

    /// Gives an unfinished claim back, unchanged, to be claimed again.
    func release(_ claim: QueueClaim) throws
}

/// An email owned by one claimant until it is marked sent, failed, or released.
public struct QueueClaim: Sendable {
    /// The queue file's base name, `batch_{timestamp_ms}_{uuid8}`.
    public let name: String
    public let email: QueuedEmail
    /// Proof of ownership held while the claim lasts (`FileQueue`: a flock(2) on the file).
    let lock: ClaimLock?

    init(name: String, email: QueuedEmail, lock: ClaimLock? = nil) {
        self.name = name
        self.email = email
        self.lock = lock
    }
}

/// An open claimed file with an exclusive flock(2) on it. The kernel releases the lock when
/// the process dies, so a claim whose file is not locked has no living owner.
final class ClaimLock: @unchecked Sendable {
    private var fd: Int32

    init(fd: Int32) {
        self.fd = fd
    }

    /// Whether `path` still names the locked file.
    func names(_ path: String) -> Bool {
        fd >= 0 && Syscall.names(path, file: fd)
    }

    /// Closes the file, which drops the lock. Safe to call more than once.
    func release() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    deinit {
        release()
    }
}

/// Where `markFailed` puts an email.
public enum FailureDecision: Equatable, Sendable {
    /// Back to pending, not to be attempted before `notBefore` (nil: as soon as it is claimed).
    case retry(notBefore: Date?)
    /// To the dead letters, with the reason, its kind (`DeadLetter.kind`) and the time.
    case deadLetter(reason: String, kind: DeadLetterKind, at: Date)
}

extension QueueStore {
    /// `markSent` for an email every recipient accepted at once: the file moves as it is.
    public func markSent(_ claim: QueueClaim, at date: Date) throws {
        try markSent(claim, record: nil, at: date)
    }
}
