import Foundation
import MailModel
import Queue

/// The suppression list in `mail_suppressions`, one row per address key, shared by every host.
final class PostgresSuppressions: SuppressionStore {
    private let pool: ConnectionPool

    init(pool: ConnectionPool) {
        self.pool = pool
    }

    func suppression(of address: String, now: Date) throws -> Suppression? {
        let found = try pool.with { connection in
            try connection.execute(
                """
                SELECT body FROM mail_suppressions
                WHERE key = $1 AND (expires_at IS NULL OR expires_at > to_timestamp($2::float8))
                """,
                [QueuedEmail.mailboxKey(address), PostgresQueueStore.epoch(now)]
            )
        }
        return try found.first?[0].map { try QueueCoding.decode(Suppression.self, from: Array($0.utf8)) }
    }

    func add(_ suppression: Suppression) throws {
        let body = PostgresQueueStore.text(try QueueCoding.encoder().encode(suppression))
        try pool.with { connection in
            try connection.execute(
                """
                INSERT INTO mail_suppressions (key, body, expires_at) VALUES ($1, $2, to_timestamp($3::float8))
                ON CONFLICT (key) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at
                """,
                [suppression.key, body, suppression.expiresAt.map(PostgresQueueStore.epoch)]
            )
        }
    }

    func remove(address: String) throws -> Bool {
        try pool.with { connection in
            try connection.execute("DELETE FROM mail_suppressions WHERE key = $1", [QueuedEmail.mailboxKey(address)])
                .affected > 0
        }
    }

    func list(after: String?, limit: Int, now: Date) throws -> [Suppression] {
        let found = try pool.with { connection in
            try connection.execute(
                """
                SELECT body FROM mail_suppressions
                WHERE (expires_at IS NULL OR expires_at > to_timestamp($1::float8)) AND ($2::text IS NULL OR key > $2)
                ORDER BY key LIMIT $3
                """,
                [PostgresQueueStore.epoch(now), after, "\(limit)"]
            )
        }
        return try found.rows.compactMap { row in
            try row[0].map { try QueueCoding.decode(Suppression.self, from: Array($0.utf8)) }
        }
    }

    func prune(now: Date) throws -> Int {
        try pool.with { connection in
            try connection.execute(
                "DELETE FROM mail_suppressions WHERE expires_at <= to_timestamp($1::float8)",
                [PostgresQueueStore.epoch(now)]
            ).affected
        }
    }
}
