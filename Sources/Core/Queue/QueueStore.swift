import Foundation

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

    /// The claimed email was delivered: it leaves the queue for the trash.
    func markSent(_ claim: QueueClaim, at date: Date) throws

    /// The claimed email failed. A transient failure with retries left is deferred with
    /// exponential backoff; a permanent one, or the last retry, goes to the dead letters.
    func markFailed(_ claim: QueueClaim, error: String, permanent: Bool, at date: Date) throws -> FailureDisposition

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

/// What `markFailed` did with an email.
public enum FailureDisposition: Equatable, Sendable {
    /// Back in the queue, not to be attempted before the given time.
    case deferred(until: Date)
    /// Moved to the dead letters.
    case deadLettered
}

/// Retry policy: `MAX_RETRIES` attempts after the first, `RETRY_BASE_DELAY` x 2^n between them.
public struct RetryPolicy: Sendable, Equatable {
    public var maxRetries: Int
    /// Seconds before the first retry; doubles with each further one.
    public var baseDelay: TimeInterval

    public init(maxRetries: Int = 3, baseDelay: TimeInterval = 1) {
        self.maxRetries = maxRetries
        self.baseDelay = baseDelay
    }

    /// The delay before retry number `retry` (0-based): `baseDelay * 2^retry` seconds.
    public func delay(beforeRetry retry: Int) -> TimeInterval {
        baseDelay * pow(2, Double(retry))
    }
}
