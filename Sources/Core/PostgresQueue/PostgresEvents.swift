import Foundation
import Logging
import MailModel
import Queue
import Synchronization

/// Delivery events in `mail_events`, one row per event id (recording it again replaces it:
/// a redo after a crash), in id order, which is the order each email's events go out in.
///
/// Every host records events; one sends them at a time: the mailworkerd holding a session
/// advisory lock on a connection of its own (`isSender`). When that host dies or loses the
/// database, the server ends its session and the lock, and another host's sender takes over
/// within seconds — so an event is sent by one host, and again only if that host stopped
/// between the receiver's answer and the row's deletion (the webhook's documented window).
final class PostgresEvents: EventStore {
    private let pool: ConnectionPool
    private let logger: Logger
    /// The connection holding the sender lock, while this process holds it.
    private let senderLock = Mutex<DatabaseConnection?>(nil)
    /// `pg_try_advisory_lock` key for the webhook sender ("mailhook").
    static let senderLockKey: Int64 = 0x6D61_696C_686F_6F6B

    init(pool: ConnectionPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    func record(_ event: DeliveryEvent) throws {
        let body = PostgresQueueStore.text(try QueueCoding.encoder().encode(PendingEvent(event: event)))
        try pool.with { connection in
            try connection.execute(
                """
                INSERT INTO mail_events (id, body) VALUES ($1, $2)
                ON CONFLICT (id) DO UPDATE SET body = excluded.body, failed = false, next_attempt_at = NULL
                """,
                [event.id, body]
            )
        }
    }

    func pending() throws -> [(name: String, event: PendingEvent)] { try read(failed: false) }

    func failed() throws -> [(name: String, event: PendingEvent)] { try read(failed: true) }

    private func read(failed: Bool) throws -> [(name: String, event: PendingEvent)] {
        let found = try pool.with { connection in
            try connection.execute(
                "SELECT id, body FROM mail_events WHERE failed = $1 ORDER BY id",
                [failed ? "t" : "f"]
            )
        }
        return found.rows.compactMap { row in
            guard let id = row[0], let body = row[1],
                let event = try? QueueCoding.decode(PendingEvent.self, from: Array(body.utf8))
            else { return nil }
            return (id, event)
        }
    }

    func delivered(_ name: String) throws {
        try pool.with { try $0.execute("DELETE FROM mail_events WHERE id = $1", [name]) }
    }

    func retry(_ name: String, _ updated: PendingEvent, failed: Bool) throws {
        let body = PostgresQueueStore.text(try QueueCoding.encoder().encode(updated))
        try pool.with { connection in
            try connection.execute(
                "UPDATE mail_events SET body = $2, failed = $3, next_attempt_at = to_timestamp($4::float8) WHERE id = $1",
                [name, body, failed ? "t" : "f", updated.nextAttemptAt.map(PostgresQueueStore.epoch)]
            )
        }
    }

    func resend(_ names: [String]) throws -> Int {
        try pool.transaction { connection in
            var count = 0
            for name in names {
                let found = try connection.execute(
                    "SELECT body FROM mail_events WHERE id = $1 AND failed FOR UPDATE",
                    [name]
                )
                guard let body = found.first?[0],
                    var event = try? QueueCoding.decode(PendingEvent.self, from: Array(body.utf8))
                else { continue }
                event.attempts = 0
                event.nextAttemptAt = nil
                try connection.execute(
                    "UPDATE mail_events SET body = $2, failed = false, next_attempt_at = NULL WHERE id = $1",
                    [name, PostgresQueueStore.text(try QueueCoding.encoder().encode(event))]
                )
                count += 1
            }
            return count
        }
    }

    func backlog() throws -> (pending: Int, failed: Int) {
        let found = try pool.with { connection in
            try connection.execute(
                "SELECT count(*) FILTER (WHERE NOT failed), count(*) FILTER (WHERE failed) FROM mail_events"
            )
        }
        let row = found.first ?? []
        return (row.first.flatMap { $0.flatMap { Int($0) } } ?? 0, row.last.flatMap { $0.flatMap { Int($0) } } ?? 0)
    }

    func isSender() -> Bool {
        senderLock.withLock { held in
            if let connection = held {
                if !connection.isBroken, (try? connection.execute("SELECT 1")) != nil { return true }
                held = nil
                logger.warning("lost the webhook sender's lock (the database connection ended)")
            }
            guard let connection = try? pool.dedicated(),
                let row = try? connection.execute("SELECT pg_try_advisory_lock($1)", ["\(Self.senderLockKey)"]),
                row.first?[0] == "t"
            else { return false }
            held = connection
            logger.info("this host sends the webhook events")
            return true
        }
    }
}
