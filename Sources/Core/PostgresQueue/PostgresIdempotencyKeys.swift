import Foundation
import MailModel
import Queue

/// Idempotency keys in `mail_idempotency_keys`, one row per user and key. While its request
/// is handled the row is locked by an open transaction on a connection of the reservation's
/// own (`SELECT ... FOR UPDATE NOWAIT`): a repeat arriving meanwhile, on any host, finds it
/// locked and is told the request is in progress; if the host dies, the server ends the
/// connection and the lock with it, as the kernel drops the file store's flock.
///
/// The reservation (digest and request ids) commits before the emails are enqueued and the
/// answer after, so the crash windows are the file store's: a retry after a crash between
/// the two finds the reservation (resumed) and looks its emails up first.
final class PostgresIdempotencyKeys: IdempotencyStore {
    private let pool: ConnectionPool
    let ttl: TimeInterval

    init(pool: ConnectionPool, ttl: TimeInterval) {
        self.pool = pool
        self.ttl = ttl
    }

    func begin(key: String, user: String?, requestDigest: String, count: Int, now: Date) throws -> IdempotencyBegin {
        let name = (user ?? "") + "\u{1}" + key
        let fresh = RequestID.distinct(max(1, count), at: now)
        let ids = Self.json(fresh)
        // The reservation, committed at once: it must outlive this request if it dies.
        let inserted = try pool.with { connection in
            try connection.execute(
                """
                INSERT INTO mail_idempotency_keys (name, request_digest, request_ids, created_at)
                VALUES ($1, $2, $3, to_timestamp($4::float8)) ON CONFLICT (name) DO NOTHING
                """,
                [name, requestDigest, ids, PostgresQueueStore.epoch(now)]
            ).affected == 1
        }
        // A connection of the pool, held until the request answers (`Held`); every other
        // outcome gives it back here (rolled back).
        let connection = try pool.take()
        var handedOver = false
        defer { if !handedOver { pool.giveBack(connection) } }
        try connection.execute("BEGIN")
        let row: [String?]
        do {
            let found = try connection.execute(
                """
                SELECT request_digest, request_ids, answer, extract(epoch FROM created_at)::float8
                FROM mail_idempotency_keys WHERE name = $1 FOR UPDATE NOWAIT
                """,
                [name]
            )
            guard let first = found.first else {
                // Pruned between the insert and the lock: start over.
                _ = try? connection.execute("ROLLBACK")
                return try begin(key: key, user: user, requestDigest: requestDigest, count: count, now: now)
            }
            row = first
        } catch let error as DatabaseError where error.isLockNotAvailable {
            return .inProgress
        }
        let created = PostgresQueueStore.date(row[3]) ?? now
        if !inserted, now.timeIntervalSince(created) >= ttl {
            // Expired: the key is free again, for this request.
            try connection.execute(
                """
                UPDATE mail_idempotency_keys SET request_digest = $2, request_ids = $3, answer = NULL,
                    created_at = to_timestamp($4::float8) WHERE name = $1
                """,
                [name, requestDigest, ids, PostgresQueueStore.epoch(now)]
            )
            handedOver = true
            return .proceed(Held(pool, connection, name: name, ids: fresh), resumed: false)
        }
        guard row[0] == requestDigest else {
            _ = try? connection.execute("ROLLBACK")
            return .mismatch
        }
        if let answer = row[2] {
            _ = try? connection.execute("ROLLBACK")
            return .replay(Array(answer.utf8))
        }
        let reserved = row[1].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) } ?? fresh
        handedOver = true
        return .proceed(Held(pool, connection, name: name, ids: reserved), resumed: !inserted)
    }

    func prune(now: Date) throws -> Int {
        try pool.with { connection in
            // SKIP LOCKED: a record held by a request in flight is not removed under it.
            try connection.execute(
                """
                DELETE FROM mail_idempotency_keys WHERE name IN (
                    SELECT name FROM mail_idempotency_keys WHERE created_at < to_timestamp($1::float8)
                    FOR UPDATE SKIP LOCKED)
                """,
                [PostgresQueueStore.epoch(now.addingTimeInterval(-ttl))]
            ).affected
        }
    }

    private static func json(_ ids: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(ids)) ?? Data("[]".utf8), as: UTF8.self)
    }

    /// A key held by an open transaction on a connection taken from the pool, given back
    /// when the request answers (or gives up).
    final class Held: KeyReservation, @unchecked Sendable {
        private let pool: ConnectionPool
        private let connection: DatabaseConnection
        private let name: String
        let requestIDs: [String]
        private var open = true

        init(_ pool: ConnectionPool, _ connection: DatabaseConnection, name: String, ids: [String]) {
            self.pool = pool
            self.connection = connection
            self.name = name
            requestIDs = ids
        }

        func finish(answer: [UInt8]) throws {
            guard open else { return }
            open = false
            defer { pool.giveBack(connection) }  // rolled back there if the COMMIT was not reached
            try connection.execute(
                "UPDATE mail_idempotency_keys SET answer = $2 WHERE name = $1",
                [name, String(decoding: answer, as: UTF8.self)]
            )
            try connection.execute("COMMIT")
        }

        func release() {
            guard open else { return }
            open = false
            _ = try? connection.execute("COMMIT")
            pool.giveBack(connection)
        }

        deinit {
            release()
        }
    }
}
