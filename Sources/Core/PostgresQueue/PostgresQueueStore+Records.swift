import Foundation
import MailModel
import Platform
import Queue

/// Lookups, cancels, the census and the operator's operations. Each state change is one
/// `UPDATE ... WHERE state = ...` (or a row locked `FOR UPDATE` and rewritten in one
/// transaction), so it races a claim on any host the way a rename races one in the file
/// queue: exactly one wins.
extension PostgresQueueStore {
    /// The columns `record(_:now:)` reads, in its order.
    static let recordColumns =
        "state, body, extract(epoch FROM finished_at)::float8, dead_letter_reason, dead_letter_kind"

    /// The record a row of `recordColumns` describes; nil for a row set aside as corrupt.
    static func record(_ row: [String?], now: Date) throws -> EmailRecord? {
        guard let stored = row[0], let body = row[1] else { return nil }
        let email = try QueueCoding.decode(QueuedEmail.self, from: Array(body.utf8))
        let state: EmailState
        switch stored {
        case "waiting": state = EmailRecord.waitingState(of: email, now: now)
        case "corrupt": return nil
        default:
            guard let known = EmailState(rawValue: stored) else { return nil }
            state = known
        }
        var deadLetter: (reason: String, kind: DeadLetterKind)?
        if state == .deadLetter {
            deadLetter = (row[3] ?? "", row[4].flatMap(DeadLetterKind.init(rawValue:)) ?? .permanent)
        }
        return EmailRecord(state: state, email: email, finishedAt: date(row[2]), deadLetter: deadLetter)
    }

    public func lookup(requestID: String, now: Date) throws -> EmailRecord? {
        let found = try pool.with { connection in
            try connection.execute(
                "SELECT \(Self.recordColumns) FROM mail_emails WHERE request_id = $1",
                [requestID.lowercased()]
            )
        }
        return try found.first.flatMap { try Self.record($0, now: now) }
    }

    public func cancel(requestID: String, now: Date) throws -> CancelOutcome {
        let canceled = try pool.with { connection in
            try connection.execute(
                """
                UPDATE mail_emails SET state = 'canceled', finished_at = to_timestamp($2::float8), updated_at = now()
                WHERE request_id = $1 AND state IN ('waiting', 'held')
                RETURNING \(Self.recordColumns)
                """,
                [requestID.lowercased(), Self.epoch(now)]
            )
        }
        if let row = canceled.first, let record = try Self.record(row, now: now) { return .canceled(record) }
        guard let record = try lookup(requestID: requestID, now: now) else { return .notFound }
        return .notCancelable(record)
    }

    public func census(limit: Int, now: Date) throws -> QueueCensus.Report {
        let at = Self.epoch(now)
        let counts = try pool.with { connection in
            try connection.execute(
                """
                SELECT CASE WHEN state <> 'waiting' THEN state
                            WHEN due_at > to_timestamp($1::float8) THEN
                                CASE WHEN scheduled THEN 'scheduled' ELSE 'deferred' END
                            ELSE 'pending' END,
                       count(*),
                       extract(epoch FROM min(CASE WHEN state = 'waiting' AND (due_at IS NULL OR due_at <= to_timestamp($1::float8))
                                                   THEN greatest(created_at, coalesce(due_at, created_at)) END))::float8
                FROM mail_emails GROUP BY 1
                """,
                [at]
            )
        }
        var report = QueueCensus.Report()
        for row in counts.rows {
            let count = row[1].flatMap { Int($0) } ?? 0
            switch row[0] {
            case "pending":
                report.pending = count
                report.oldestDue = Self.date(row[2])
            case "scheduled": report.scheduled = count
            case "deferred": report.deferred = count
            case "sending": report.processing = count
            case "dead_letter": report.deadLetter = count
            case "held": report.held = count
            case "sent", "partially_sent", "canceled": report.trash += count
            case "corrupt": report.corrupt = count
            default: break
            }
        }
        guard limit > 0 else { return report }
        let listed = try pool.with { connection in
            try connection.execute(
                """
                SELECT request_id, state, priority, retry_count, extract(epoch FROM due_at)::float8,
                       extract(epoch FROM created_at)::float8, octet_length(body), scheduled
                FROM mail_emails WHERE state IN ('sending', 'waiting')
                ORDER BY state = 'waiting', created_at, request_id LIMIT $1
                """,
                ["\(limit)"]
            )
        }
        for row in listed.rows {
            let due = Self.date(row[4])
            let state: String
            if row[1] == "sending" {
                state = "processing"
            } else if let due, due > now {
                state = row[7] == "t" ? "scheduled" : "deferred"
            } else {
                state = "pending"
            }
            // Named as the file queue (and the Python service) names the entry, so that
            // clients reading `files[].file` see the same shape on either store.
            let base = row[0].flatMap { RequestID.fileBaseName(for: $0) } ?? row[0] ?? ""
            report.files.append(
                QueueCensus.FileInfo(
                    file: row[1] == "sending" ? QueueLayout.claimedName(base) : QueueLayout.pendingName(base),
                    request_id: row[0],
                    state: state,
                    priority: row[2].flatMap { Int($0) },
                    retry_count: row[3].flatMap { Int($0) },
                    next_attempt_at: due.map(Timestamp.iso8601),
                    created_at: Self.date(row[5]).map(Timestamp.iso8601),
                    size_bytes: row[6].flatMap { Int($0) } ?? 0
                )
            )
        }
        return report
    }

    // MARK: Administration

    public func list(states: Set<EmailState>?, now: Date) throws -> [EmailRecord] {
        let wanted = states ?? [.scheduled, .queued, .deferred, .sending, .held, .deadLetter]
        var stored = Set(wanted.map(\.rawValue))
        if !stored.intersection(["scheduled", "queued", "deferred"]).isEmpty { stored.insert("waiting") }
        let found = try pool.with { connection in
            try connection.execute(
                """
                SELECT \(Self.recordColumns) FROM mail_emails WHERE state = ANY($1::text[])
                ORDER BY created_at, request_id
                """,
                [Self.array(stored.sorted())]
            )
        }
        return try found.rows.compactMap { try Self.record($0, now: now) }.filter { wanted.contains($0.state) }
    }

    public func hold(requestID: String, now: Date) throws -> AdminOutcome {
        try move(requestID, from: "waiting", to: "held", now: now)
    }

    public func releaseHeld(requestID: String, now: Date) throws -> AdminOutcome {
        try move(requestID, from: "held", to: "waiting", now: now, notify: true)
    }

    /// Moves one email between stored states in one statement.
    private func move(
        _ requestID: String,
        from: String,
        to: String,
        now: Date,
        notify: Bool = false
    ) throws -> AdminOutcome {
        let moved = try pool.transaction { connection in
            let moved = try connection.execute(
                """
                UPDATE mail_emails SET state = $3, updated_at = now() WHERE request_id = $1 AND state = $2
                RETURNING \(Self.recordColumns)
                """,
                [requestID.lowercased(), from, to]
            )
            if notify, moved.affected > 0 { try connection.execute("SELECT pg_notify('mail_arrivals', '')") }
            return moved
        }
        if let row = moved.first, let record = try Self.record(row, now: now) { return .done(record) }
        guard let record = try lookup(requestID: requestID, now: now) else { return .notFound }
        return .notInState(record)
    }

    public func flush(requestID: String, now: Date) throws -> AdminOutcome {
        try rewrite(requestID, now: now, allowed: [.deferred]) { record in
            var email = record.email
            email.nextAttemptAt = nil
            return email
        }
    }

    public func requeue(requestID: String, now: Date) throws -> AdminOutcome {
        try rewrite(requestID, now: now, allowed: [.deadLetter]) { $0.email.requeued(at: now) }
    }

    /// Locks the email's row, and when its state is one of `allowed`, writes `change`'s email
    /// back as waiting (due at its `nextAttemptAt`), all in one transaction.
    private func rewrite(
        _ requestID: String,
        now: Date,
        allowed: Set<EmailState>,
        _ change: (EmailRecord) -> QueuedEmail
    ) throws -> AdminOutcome {
        try pool.transaction { connection in
            let found = try connection.execute(
                "SELECT \(Self.recordColumns) FROM mail_emails WHERE request_id = $1 FOR UPDATE",
                [requestID.lowercased()]
            )
            guard let row = found.first, let record = try Self.record(row, now: now) else { return .notFound }
            guard allowed.contains(record.state) else { return .notInState(record) }
            let email = change(record)
            try connection.execute(
                """
                UPDATE mail_emails SET state = 'waiting', body = $2, due_at = to_timestamp($3::float8),
                    retry_count = $4, scheduled = $5, dead_letter_reason = NULL, dead_letter_kind = NULL,
                    finished_at = NULL, updated_at = now()
                WHERE request_id = $1
                """,
                [
                    requestID.lowercased(), Self.text(try QueueCoding.encoder().encode(email)),
                    email.nextAttemptAt.map(Self.epoch), "\(email.retryCount)",
                    email.sendAt != nil && email.retryCount == 0 ? "t" : "f",
                ]
            )
            try connection.execute("SELECT pg_notify('mail_arrivals', '')")
            return .done(EmailRecord(state: EmailRecord.waitingState(of: email, now: now), email: email))
        }
    }

    /// A requeue is one transaction here: none is ever left half done.
    public func interruptedRequeues() throws -> [String] { [] }

    public func delete(requestID: String, now: Date) throws -> AdminOutcome {
        let deleted = try pool.with { connection in
            try connection.execute(
                """
                DELETE FROM mail_emails WHERE request_id = $1 AND state IN ('waiting', 'held', 'dead_letter')
                RETURNING \(Self.recordColumns)
                """,
                [requestID.lowercased()]
            )
        }
        if let row = deleted.first, let record = try Self.record(row, now: now) { return .done(record) }
        guard let record = try lookup(requestID: requestID, now: now) else { return .notFound }
        return .notInState(record)
    }
}
