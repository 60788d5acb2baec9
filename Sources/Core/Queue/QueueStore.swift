import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// Where accepted emails wait for delivery, and every operation the two programs need of it.
/// `FileQueue` keeps them as one JSON file each; a database-backed store for several hosts is
/// planned behind the same protocol, and the tests drive the delivery agent through an
/// in-memory one. The retry and lifetime policy is not the store's: `DeliveryPolicy` decides,
/// and the store carries out the `FailureDecision` it is handed.
///
/// Every method may be called from any thread and from several processes at once on the same
/// store: a claim is exclusive, so no email is handed to two claimants while nothing crashes.
public protocol QueueStore: Sendable {
    // MARK: Intake (mailfcgi)

    /// Stores `email` durably; when this returns, the email survives a crash.
    /// - Throws: `QueueError`, `SystemError` (disk full, permissions) or `EncodingError`;
    ///   nothing is left behind.
    func enqueue(_ email: QueuedEmail) throws

    /// Stores every email of a batch durably, sharing the store's commit; all or nothing
    /// (see `QueueError.batchPartlyStored` for the one exception).
    func enqueue(batch emails: [QueuedEmail]) throws

    /// The email with this request id, in whatever state, or nil.
    func lookup(requestID: String, now: Date) throws -> EmailRecord?

    /// Cancels a scheduled, queued or deferred email; exactly one of a cancel and a claim
    /// racing for the same email wins.
    func cancel(requestID: String, now: Date) throws -> CancelOutcome

    /// Counts of each state and the first `limit` waiting or claimed emails, for `/status`.
    func census(limit: Int, now: Date) throws -> QueueCensus.Report

    /// What is wrong with the store, for `/health`'s `queue_manager` (empty when healthy);
    /// `reported` are problems mailworkerd reported through its status file.
    func healthProblems(reported: [String]) -> [String]

    // MARK: Delivery (mailworkerd)

    /// Takes the next due email, highest priority first and FIFO within a priority.
    /// - Returns: nil when nothing is due at `now`.
    /// - Throws: `SystemError` when the store cannot be read.
    func claim(now: Date) throws -> QueueClaim?

    /// Takes the oldest email accepted before `createdBefore`, due or not, so that an email
    /// past `MAX_QUEUE_LIFETIME` can be given up while delivery is paused. Emails named in
    /// `skipping` (found not expired, having been requeued) are passed over.
    /// - Returns: nil when there is none.
    func claimExpired(createdBefore: Date, now: Date, skipping: Set<String>) throws -> QueueClaim?

    /// The claimed email was delivered (to every recipient, or to some and refused for good
    /// to the others): it leaves the queue for the finished ones. `record` is the email with
    /// its recipients' outcomes, to keep; nil keeps the claimed email as it is.
    func markSent(_ claim: QueueClaim, record: QueuedEmail?, at date: Date) throws

    /// The claimed email was not delivered to everyone: `updated` is it with the attempt
    /// recorded, and `decision` (from `DeliveryPolicy`, not the store) says where it goes.
    func markFailed(_ claim: QueueClaim, updated: QueuedEmail, decision: FailureDecision) throws

    /// Gives an unfinished claim back, unchanged, to be claimed again.
    func release(_ claim: QueueClaim) throws

    /// Gives back the claim named `name` that this process holds but can no longer finish
    /// (its thread is stuck past the shutdown timeout); the process exits next.
    func abandonClaim(_ name: String) throws

    // MARK: Wake-ups

    /// When the earliest deferred or scheduled email becomes due, as far as the store knows.
    var nextDue: Date? { get }

    /// Waiting emails the store knows of, and how many of them are deferred or scheduled.
    var pendingCounts: (pending: Int, deferred: Int) { get }

    /// Watches for new emails and calls `arrived` for each batch of arrivals, so claimants
    /// sleep instead of polling. Start the watch with `start()`.
    func watchArrivals(_ arrived: @escaping @Sendable () -> Void) throws -> any ArrivalWatch

    /// Forgets what the store cached of its contents; the next claim looks again (the
    /// polling fallback for arrivals a watch could miss).
    func refresh()

    // MARK: Housekeeping

    /// Puts back claims whose owner is gone, and, with `lockedOlderThan`, claims a living
    /// owner has held longer (`CLAIM_TIMEOUT`). Returns how many went back.
    func recoverClaims(lockedOlderThan: TimeInterval?, now: Date) throws -> Int

    /// Deletes finished emails (sent, canceled) finished more than `age` seconds ago.
    /// Returns how many.
    func pruneFinished(olderThan age: TimeInterval, now: Date) throws -> Int

    /// Entries the store could neither handle nor set aside, as "name: reason".
    var problems: [String] { get }

    // MARK: Administration (mailctl)

    /// Every email in `states` (every one not finished when nil), in the order accepted.
    func list(states: Set<EmailState>?, now: Date) throws -> [EmailRecord]

    /// Keeps a scheduled, queued or deferred email out of delivery until `releaseHeld`;
    /// exactly one of a hold and a claim racing for it wins.
    func hold(requestID: String, now: Date) throws -> AdminOutcome

    /// Puts a held email back to be delivered.
    func releaseHeld(requestID: String, now: Date) throws -> AdminOutcome

    /// Makes a deferred email due now.
    func flush(requestID: String, now: Date) throws -> AdminOutcome

    /// Puts a dead letter back in the queue with its retries reset; never queues it twice.
    func requeue(requestID: String, now: Date) throws -> AdminOutcome

    /// Request ids of requeues that were interrupted (a crash between their steps): running
    /// `requeue` on each finishes it.
    func interruptedRequeues() throws -> [String]

    /// Deletes an email that is waiting, held or dead-lettered; never one being sent.
    func delete(requestID: String, now: Date) throws -> AdminOutcome

    // MARK: The suppression list (both)

    /// The addresses not sent to, beside the emails.
    var suppressions: any SuppressionStore { get }

    /// Delivery events waiting for the webhook, beside the emails.
    var events: any EventStore { get }

    // MARK: Worker hosts

    /// Records this mailworkerd's status (its status file's JSON, under `id`) where every
    /// host's responder can read it. Must not block: a store that writes it elsewhere does
    /// so from a thread of its own.
    func publishWorkerStatus(id: String, status: [UInt8])

    /// The statuses every host's mailworkerd published (`publishWorkerStatus`), by id; empty
    /// for a store on one host, whose status files say it all.
    func workerStatuses() -> [WorkerHeartbeat]

    // MARK: Idempotency keys (mailfcgi)

    /// Where `Idempotency-Key`s are kept, beside the emails they name (so that a database
    /// store keeps both in one place).
    var idempotencyKeys: any IdempotencyStore { get }
}

/// An error that says the store cannot be reached right now (a database down or cut off),
/// not that the request was wrong: answered 503 with Retry-After, like a queue disk that
/// fails.
public protocol StoreUnavailableError: Error, CustomStringConvertible {}

/// One mailworkerd's last published status, as a shared store keeps it.
public struct WorkerHeartbeat: Sendable {
    /// `host/pid`.
    public let id: String
    public let host: String
    /// When the store last received it (the store's clock).
    public let updatedAt: Date
    /// The status file's JSON.
    public let status: [UInt8]

    public init(id: String, host: String, updatedAt: Date, status: [UInt8]) {
        self.id = id
        self.host = host
        self.updatedAt = updatedAt
        self.status = status
    }
}

/// `Idempotency-Key` records: a key reserved with its request ids before the emails are
/// stored, and the answer kept after (`IdempotencyKeys` for the file store).
public protocol IdempotencyStore: Sendable {
    /// How long a record binds its key (`IDEMPOTENCY_TTL_HOURS`), in seconds.
    var ttl: TimeInterval { get }

    /// Looks up, and when free takes, `key` for `user`'s request whose canonical body
    /// digest is `requestDigest`, reserving `count` request ids (one per email of a batch).
    /// A `.proceed` holds the key until the reservation is finished or released.
    func begin(key: String, user: String?, requestDigest: String, count: Int, now: Date) throws -> IdempotencyBegin

    /// Deletes expired records no request holds. Returns how many.
    @discardableResult
    func prune(now: Date) throws -> Int
}

/// Where a key stands when its request arrives.
public enum IdempotencyBegin {
    /// Handle the request; the reservation says under which request ids to store it.
    /// `resumed`: an earlier request with this key reserved those ids and did not answer (it
    /// may or may not have stored its emails: look them up first).
    case proceed(any KeyReservation, resumed: Bool)
    /// Answered before: the first answer's body, to send again.
    case replay([UInt8])
    /// The key was used for another request (another body) within the TTL.
    case mismatch
    /// A request with this key is being handled right now.
    case inProgress
}

/// A key taken for one request.
public protocol KeyReservation: AnyObject, Sendable {
    /// The request ids to store the request's emails under, one per email in order.
    var requestIDs: [String] { get }
    /// Records `answer` durably as the key's answer and frees the key.
    func finish(answer: [UInt8]) throws
    /// Frees the key without an answer: a retry finds the reservation and completes it.
    func release()
}

extension KeyReservation {
    /// A single email's request id.
    public var requestID: String { requestIDs[0] }
}

extension IdempotencyStore {
    public func begin(key: String, user: String?, requestDigest: String) throws -> IdempotencyBegin {
        try begin(key: key, user: user, requestDigest: requestDigest, count: 1, now: Date())
    }
}

/// A running watch for arrivals (`QueueStore.watchArrivals`).
public protocol ArrivalWatch: Sendable {
    func start()
    /// Stops watching; returns once no more calls can come.
    func stop() async
}

/// An email owned by one claimant until it is marked sent, failed, or released.
public struct QueueClaim: Sendable {
    /// The store's name for the claimed email (`FileQueue`: the queue file's base name,
    /// `batch_{timestamp_ms}_{uuid8}`).
    public let name: String
    public let email: QueuedEmail
    /// Proof of ownership, which only the store that made the claim understands
    /// (`FileQueue`: a `ClaimLock`, an flock(2) on the claimed file; a database: a lease).
    public let token: (any Sendable & AnyObject)?

    public init(name: String, email: QueuedEmail, token: (any Sendable & AnyObject)? = nil) {
        self.name = name
        self.email = email
        self.token = token
    }

    /// The file queue's token.
    var lock: ClaimLock? { token as? ClaimLock }
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
    /// On one host the status file is the record: nothing more to publish.
    public func publishWorkerStatus(id: String, status: [UInt8]) {}

    public func workerStatuses() -> [WorkerHeartbeat] { [] }

    /// `markSent` for an email every recipient accepted at once: the file moves as it is.
    public func markSent(_ claim: QueueClaim, at date: Date) throws {
        try markSent(claim, record: nil, at: date)
    }

    public func lookup(requestID: String) throws -> EmailRecord? {
        try lookup(requestID: requestID, now: Date())
    }

    public func cancel(requestID: String) throws -> CancelOutcome {
        try cancel(requestID: requestID, now: Date())
    }

    public func recoverClaims(lockedOlderThan timeout: TimeInterval? = nil) throws -> Int {
        try recoverClaims(lockedOlderThan: timeout, now: Date())
    }
}
