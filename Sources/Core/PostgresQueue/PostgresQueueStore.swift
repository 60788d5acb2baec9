import Foundation
import Logging
import MailModel
import Platform
import Queue
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The queue in a PostgreSQL database that several hosts share (`QUEUE_STORE=postgres`):
/// every responder answers for mail any of them took, and every worker host delivers from
/// the same queue. One row per email in `mail_emails` (the email as the file queue's JSON,
/// plus the columns claims are chosen by); idempotency keys, suppressions, delivery events
/// and worker heartbeats in tables beside it (`Schema`).
///
/// Claims are leases: a claim takes a fencing token from a sequence and holds the row until
/// `lease_until` (the database's clock), renewed every third of `CLAIM_LEASE` while the
/// email is being sent. A lease that lapses (its host died, or lost the database) is taken
/// over by the next claim anywhere; every outcome is written only `WHERE lease_token = ` the
/// claim's own, so a host that comes back after losing its lease cannot overwrite the
/// outcome of the host that took over (it gets `QueueError.claimLost`).
///
/// What can be sent twice: an email whose relay accepted it while its outcome's commit did
/// not reach the database (the host died, or was cut off, between the two) is sent again by
/// the host that takes the lapsed lease over, with the same Message-ID. What never can: an
/// email whose `sent` outcome committed, and two hosts holding one lease at once (a claim is
/// one row lock, `FOR UPDATE SKIP LOCKED`).
public final class PostgresQueueStore: QueueStore {
    let pool: ConnectionPool
    let logger: Logger
    /// `CLAIM_LEASE` seconds.
    public let leaseDuration: TimeInterval
    /// Who holds the leases this process takes: `host/pid`.
    public let owner: String
    public let idempotencyKeys: any IdempotencyStore
    public let suppressions: any SuppressionStore
    public let events: any EventStore

    /// The leases this process holds, by request id: renewed by `LeaseKeeper`, given back by
    /// `abandonClaim`.
    let leases = Mutex<[String: Lease]>([:])
    private let keeper = Mutex<LeaseKeeper?>(nil)
    private let heartbeats: WorkerHeartbeats
    /// When lapsed leases were last swept back (at most once a second per process).
    private let lastSweep = Mutex<Date>(.distantPast)

    /// A claim's token: the fencing token its row carries while this claim holds it.
    final class Lease: Sendable {
        let token: Int64
        let requestID: String

        init(token: Int64, requestID: String) {
            self.token = token
            self.requestID = requestID
        }
    }

    /// Connects to `url`, applies the schema's missing migrations, and checks it.
    /// - Parameters:
    ///   - program: the daemon's name, for `application_name` and the lease owner.
    ///   - leaseDuration: `CLAIM_LEASE` seconds.
    ///   - idempotencyTTL: `IDEMPOTENCY_TTL_HOURS` in seconds.
    /// - Throws: `DatabaseError` when the database cannot be reached or migrated.
    public init(
        url: String,
        program: String,
        leaseDuration: TimeInterval,
        idempotencyTTL: TimeInterval,
        logger: Logger
    ) throws {
        let host = ProcessInfo.processInfo.hostName
        // host/pid@pid-namespace: a pid means this host's process only in our namespace
        // (containers on one host share its name, not its pids).
        let namespace = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")) ?? "?"
        owner = "\(host)/\(getpid())@\(namespace)"
        pool = ConnectionPool(url: url, applicationName: "\(program)@\(host)")
        self.logger = logger
        self.leaseDuration = leaseDuration
        idempotencyKeys = PostgresIdempotencyKeys(pool: pool, ttl: idempotencyTTL)
        suppressions = PostgresSuppressions(pool: pool)
        events = PostgresEvents(pool: pool, logger: logger)
        heartbeats = WorkerHeartbeats(pool: pool, logger: logger)
        let applied = try pool.with { try Schema.migrate($0) }
        if !applied.isEmpty {
            logger.notice("database schema migrated", metadata: ["versions": "\(applied)"])
        }
    }

    // MARK: Intake

    public func enqueue(_ email: QueuedEmail) throws {
        try enqueue(batch: [email])
    }

    /// Inserts every email in one transaction with a notification to the workers: durable
    /// at commit (the server's `synchronous_commit`), all or nothing.
    public func enqueue(batch emails: [QueuedEmail]) throws {
        guard !emails.isEmpty else { return }
        let encoder = QueueCoding.encoder()
        let rows = try emails.map { email -> [String?] in
            guard email.requestID.utf8.count <= 64 else { throw QueueError.invalidRequestID(email.requestID) }
            return [
                email.requestID.lowercased(), "\(email.priority)", Self.epoch(email.createdAt),
                email.nextAttemptAt.map(Self.epoch), email.sendAt != nil && email.retryCount == 0 ? "t" : "f",
                "\(email.retryCount)", Self.text(try encoder.encode(email)),
            ]
        }
        do {
            try pool.transaction { connection in
                for row in rows {
                    try connection.execute(
                        """
                        INSERT INTO mail_emails (request_id, state, priority, created_at, due_at, scheduled, retry_count, body)
                        VALUES ($1, 'waiting', $2, to_timestamp($3::float8), to_timestamp($4::float8), $5, $6, $7)
                        """,
                        row
                    )
                }
                try connection.execute("SELECT pg_notify('mail_arrivals', '')")
            }
        } catch let error as DatabaseError where error.isUniqueViolation {
            throw QueueError.nameTaken(emails[0].requestID)
        }
    }

    // MARK: Delivery

    public func claim(now: Date) throws -> QueueClaim? {
        try sweepLapsedLeases()
        return try claimFirst(
            "due_at IS NULL OR due_at <= to_timestamp($3::float8)",
            order: "priority, created_at, request_id",
            [Self.epoch(now)]
        )
    }

    public func claimExpired(createdBefore: Date, now: Date, skipping: Set<String>) throws -> QueueClaim? {
        try claimFirst(
            "created_at < to_timestamp($3::float8) AND NOT (request_id = ANY($4::text[]))",
            order: "created_at, request_id",
            [Self.epoch(createdBefore), Self.array(skipping.sorted())]
        )
    }

    /// Leases the first waiting email, in `order`, that `condition` (with `$3`... bound to
    /// `values`) admits: one statement, exclusive across hosts (`FOR UPDATE SKIP LOCKED`).
    /// Rows set aside as corrupt are passed over.
    private func claimFirst(_ condition: String, order: String, _ values: [String?]) throws -> QueueClaim? {
        while true {
            let found = try pool.with { connection in
                try connection.execute(
                    """
                    UPDATE mail_emails SET state = 'sending', lease_token = nextval('mail_lease_tokens'),
                        lease_owner = $1, lease_until = now() + make_interval(secs => $2::float8),
                        claimed_at = now(), updated_at = now()
                    WHERE request_id = (
                        SELECT request_id FROM mail_emails WHERE state = 'waiting' AND (\(condition))
                        ORDER BY \(order) LIMIT 1 FOR UPDATE SKIP LOCKED)
                    RETURNING request_id, body, lease_token
                    """,
                    [owner, "\(leaseDuration)"] + values
                )
            }
            guard let row = found.first else { return nil }
            if let claim = try claimed(row) { return claim }
        }
    }

    /// The claim a claiming statement returned, or nil when its row could not be used (set
    /// aside as `corrupt`, as the file queue sets such files aside).
    private func claimed(_ row: [String?]) throws -> QueueClaim? {
        guard let id = row[0], let body = row[1], let token = row[2].flatMap({ Int64($0) }) else { return nil }
        let problem: String?
        var email: QueuedEmail?
        do {
            email = try QueueCoding.decode(QueuedEmail.self, from: Array(body.utf8))
            problem = email?.deliveryProblem
        } catch {
            problem = "cannot be read: \(error)"
        }
        if let email, problem == nil {
            let lease = Lease(token: token, requestID: id)
            leases.withLock { $0[id] = lease }
            startKeeper()
            return QueueClaim(name: id, email: email, token: lease)
        }
        try pool.with { connection in
            try connection.execute(
                """
                UPDATE mail_emails SET state = 'corrupt', dead_letter_reason = $3, lease_token = NULL,
                    lease_owner = NULL, lease_until = NULL, updated_at = now()
                WHERE request_id = $1 AND lease_token = $2
                """,
                [id, "\(token)", problem]
            )
        }
        logger.error(
            "queue entry set aside as corrupt",
            metadata: ["request_id": "\(id)", "error": "\(problem ?? "")"]
        )
        return nil
    }

    public func markSent(_ claim: QueueClaim, record: QueuedEmail?, at date: Date) throws {
        let lease = try lease(of: claim)
        let email = record ?? claim.email
        let refused = email.recipients?.contains { $0.state == .failed } ?? false
        // Gap (crash point `sent.before-trash`, named as the file queue's): the relay has the
        // email and the row is still leased. The lease lapses, another claim takes it over
        // and sends it again with the same Message-ID: the one window for a duplicate.
        CrashPoint.reach("sent.before-trash")
        let values = [
            refused ? "partially_sent" : "sent", Self.text(try QueueCoding.encoder().encode(email)), Self.epoch(date),
        ]
        do {
            try settle(lease, "state = $3, body = $4, finished_at = to_timestamp($5::float8)", values)
        } catch QueueError.claimLost(let name) {
            // Put back while it was being sent (`CLAIM_TIMEOUT`, or a lapse): if nobody holds
            // it now, it was delivered all the same, so it is filed as sent rather than sent
            // again; a cancel that came meanwhile yields to the delivery, as in the file queue.
            let filed = try pool.with { connection in
                try connection.execute(
                    """
                    UPDATE mail_emails SET state = $2, body = $3, finished_at = to_timestamp($4::float8),
                        updated_at = now()
                    WHERE request_id = $1 AND state IN ('waiting', 'canceled')
                    """,
                    [lease.requestID] + values
                )
            }
            if filed.affected == 1 {
                logger.warning(
                    "an email put back while it was being sent had been delivered; filed as sent",
                    metadata: ["request_id": "\(lease.requestID)"]
                )
            }
            throw QueueError.claimLost(name)
        }
    }

    public func markFailed(_ claim: QueueClaim, updated: QueuedEmail, decision: FailureDecision) throws {
        let lease = try lease(of: claim)
        var email = updated
        switch decision {
        case .retry(let notBefore):
            email.nextAttemptAt = notBefore
            CrashPoint.reach("defer.before-write")
            try settle(
                lease,
                "state = 'waiting', body = $3, due_at = to_timestamp($4::float8), retry_count = $5, scheduled = $6",
                [
                    Self.text(try QueueCoding.encoder().encode(email)), notBefore.map(Self.epoch),
                    "\(email.retryCount)",
                    email.sendAt != nil && email.retryCount == 0 ? "t" : "f",
                ]
            )
        case .deadLetter(let reason, let kind, let at):
            CrashPoint.reach("dead-letter.before-write")
            try settle(
                lease,
                """
                state = 'dead_letter', body = $3, dead_letter_reason = $4, dead_letter_kind = $5,
                finished_at = to_timestamp($6::float8)
                """,
                [Self.text(try QueueCoding.encoder().encode(email)), reason, kind.rawValue, Self.epoch(at)]
            )
        }
    }

    public func release(_ claim: QueueClaim) throws {
        let lease = try lease(of: claim)
        try settle(lease, "state = 'waiting'", [])
    }

    public func abandonClaim(_ name: String) throws {
        guard let lease = leases.withLock({ $0[name] }) else { return }
        try settle(lease, "state = 'waiting'", [])
    }

    /// The lease a claim of this store carries.
    private func lease(of claim: QueueClaim) throws -> Lease {
        guard let lease = claim.token as? Lease else { throw QueueError.claimLost(claim.name) }
        return lease
    }

    /// Writes an outcome (`assignments`, with `$3`... bound to `values`) to the claimed row,
    /// ending the lease, only while the row still carries this lease's token.
    /// - Throws: `QueueError.claimLost` when it does not (taken over after a lapse, or
    ///   given up by an operator); `DatabaseError` when the database cannot be reached (the
    ///   caller retries with the same outcome).
    private func settle(_ lease: Lease, _ assignments: String, _ values: [String?]) throws {
        let result = try pool.with { connection in
            try connection.execute(
                """
                UPDATE mail_emails SET \(assignments), lease_token = NULL, lease_owner = NULL, lease_until = NULL,
                    claimed_at = NULL, updated_at = now()
                WHERE request_id = $1 AND lease_token = $2 AND state = 'sending'
                """,
                [lease.requestID, "\(lease.token)"] + values
            )
        }
        // Only this claim's entry: a newer claim of the same email must keep being renewed.
        leases.withLock { if $0[lease.requestID] === lease { $0[lease.requestID] = nil } }
        guard result.affected == 1 else {
            logger.warning(
                "claim was taken over after its lease lapsed; its outcome is not recorded",
                metadata: ["request_id": "\(lease.requestID)", "lease": "\(lease.token)"]
            )
            throw QueueError.claimLost(lease.requestID)
        }
    }

    // MARK: Leases

    private func startKeeper() {
        keeper.withLock { keeper in
            if keeper == nil { keeper = LeaseKeeper(store: self) }
        }
    }

    /// Extends every lease this process holds by `CLAIM_LEASE` from now. A lease whose row is
    /// no longer ours is left alone: its outcome will be refused (`settle`).
    func renewLeases() throws {
        let held = leases.withLock { Array($0.values) }
        guard !held.isEmpty else { return }
        try pool.with { connection in
            try connection.execute(
                """
                UPDATE mail_emails SET lease_until = now() + make_interval(secs => $2::float8)
                WHERE lease_token = ANY($1::bigint[]) AND state = 'sending'
                """,
                [Self.array(held.map { "\($0.token)" }), "\(leaseDuration)"]
            )
        }
    }

    /// Puts lapsed leases back to waiting, at most once a second: their owners died or lost
    /// the database for longer than `CLAIM_LEASE`. Their next claim takes a new token, so
    /// the old owner's outcome is refused.
    private func sweepLapsedLeases() throws {
        let now = Date()
        let due = lastSweep.withLock { last -> Bool in
            guard now.timeIntervalSince(last) >= 1 else { return false }
            last = now
            return true
        }
        guard due else { return }
        let swept = try pool.with { connection in
            try connection.execute(
                """
                UPDATE mail_emails SET state = 'waiting', lease_token = NULL, lease_owner = NULL,
                    lease_until = NULL, claimed_at = NULL, updated_at = now()
                WHERE state = 'sending' AND lease_until < now()
                RETURNING request_id, lease_owner
                """
            )
        }
        if swept.affected > 0 {
            logger.warning("lapsed claims taken back for delivery", metadata: ["count": "\(swept.affected)"])
        }
    }

    // MARK: Wake-ups

    public var nextDue: Date? {
        let row = try? pool.with { connection in
            try connection.execute(
                "SELECT extract(epoch FROM min(due_at))::float8 FROM mail_emails WHERE state = 'waiting' AND due_at > now()"
            )
        }
        return row?.first?[0].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) }
    }

    public var pendingCounts: (pending: Int, deferred: Int) {
        let row = try? pool.with { connection in
            try connection.execute(
                """
                SELECT count(*), count(*) FILTER (WHERE due_at > now()) FROM mail_emails WHERE state = 'waiting'
                """
            )
        }
        guard let values = row?.first else { return (0, 0) }
        return (values[0].flatMap { Int($0) } ?? 0, values[1].flatMap { Int($0) } ?? 0)
    }

    public func watchArrivals(_ arrived: @escaping @Sendable () -> Void) throws -> any ArrivalWatch {
        NotificationWatch(pool: pool, channel: "mail_arrivals", logger: logger, arrived)
    }

    public func refresh() {}

    // MARK: Housekeeping

    /// Puts back lapsed leases, claims of this host's processes that are gone (a mailworkerd
    /// restarted after kill -9 need not wait for its old leases to lapse), and with
    /// `lockedOlderThan` (`CLAIM_TIMEOUT`) claims held longer than that whatever their lease.
    /// Hosts sharing a database must have distinct host names: a lease's owner is `host/pid`.
    public func recoverClaims(lockedOlderThan timeout: TimeInterval?, now: Date) throws -> Int {
        let host = String(owner.split(separator: "/").first ?? "")
        let ours = try pool.with { connection in
            try connection.execute(
                "SELECT lease_token, lease_owner FROM mail_emails WHERE state = 'sending' AND lease_owner LIKE $1",
                [host.replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "/%"]
            )
        }
        let namespace = owner.split(separator: "@", maxSplits: 1).last.map(String.init) ?? ""
        let orphaned = ours.rows.compactMap { row -> String? in
            guard let token = row[0], let process = row[1]?.split(separator: "/").last,
                let at = process.firstIndex(of: "@"), process[process.index(after: at)...] == namespace,
                let pid = Int32(process[..<at]), pid != getpid(), kill(pid, 0) == -1, errno == ESRCH
            else { return nil }
            return token
        }
        var recovered = 0
        if !orphaned.isEmpty {
            recovered = try pool.with { connection in
                try connection.execute(
                    """
                    UPDATE mail_emails SET state = 'waiting', lease_token = NULL, lease_owner = NULL,
                        lease_until = NULL, claimed_at = NULL, updated_at = now()
                    WHERE state = 'sending' AND lease_token = ANY($1::bigint[])
                    """,
                    [Self.array(orphaned)]
                ).affected
            }
        }
        let result = try pool.with { connection in
            try connection.execute(
                """
                UPDATE mail_emails SET state = 'waiting', lease_token = NULL, lease_owner = NULL,
                    lease_until = NULL, claimed_at = NULL, updated_at = now()
                WHERE state = 'sending'
                    AND (lease_until < now()
                        OR ($1::float8 IS NOT NULL AND claimed_at < now() - make_interval(secs => $1::float8)))
                """,
                [timeout.map { "\($0)" }]
            )
        }
        return recovered + result.affected
    }

    public func pruneFinished(olderThan age: TimeInterval, now: Date) throws -> Int {
        let result = try pool.with { connection in
            try connection.execute(
                """
                DELETE FROM mail_emails
                WHERE state IN ('sent', 'partially_sent', 'canceled') AND finished_at < to_timestamp($1::float8)
                """,
                [Self.epoch(now.addingTimeInterval(-age))]
            )
        }
        return result.affected
    }

    public var problems: [String] { [] }

    public func publishWorkerStatus(id: String, status: [UInt8]) {
        heartbeats.publish(id: id, status: status)
    }

    public func workerStatuses() -> [WorkerHeartbeat] { heartbeats.all() }

    public func healthProblems(reported: [String]) -> [String] {
        do {
            try pool.with { try $0.execute("SELECT 1") }
            return reported
        } catch {
            return reported + ["the database cannot be reached: \(error)"]
        }
    }

    // MARK: Values

    /// Seconds since 1970 as text, for `to_timestamp($n::float8)`.
    static func epoch(_ date: Date) -> String { String(date.timeIntervalSince1970) }

    /// A date from `extract(epoch FROM ...)` text.
    static func date(_ text: String?) -> Date? { text.flatMap(Double.init).map { Date(timeIntervalSince1970: $0) } }

    /// UTF-8 bytes (QueueCoding's JSON) as text.
    static func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }

    /// A PostgreSQL array literal of `values` (each quoted and escaped), for `$n::type[]`.
    static func array(_ values: [String]) -> String {
        let quoted = values.map { value in
            "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
        }
        return "{" + quoted.joined(separator: ",") + "}"
    }
}
