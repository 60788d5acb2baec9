import Foundation
import Logging
import Platform
import Queue
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// mailworkerd's status in `mail_workers`, one row per process, so a responder on any host
/// shows every worker host. The status is handed over in memory and written from a thread of
/// its own once a second: a database that hangs delays this row, never the local status file
/// (whose freshness is how this host's responder sees its worker alive).
final class WorkerHeartbeats: Sendable {
    private let pool: ConnectionPool
    private let logger: Logger
    private let latest = Mutex<(id: String, status: [UInt8])?>(nil)
    private let thread = Mutex<BackgroundThread?>(nil)
    /// Rows not updated for this long are deleted (a host gone for good).
    static let forgetAfter: TimeInterval = 86_400

    init(pool: ConnectionPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    func publish(id: String, status: [UInt8]) {
        latest.withLock { $0 = (id, status) }
        thread.withLock { thread in
            guard thread == nil else { return }
            thread = BackgroundThread(name: "heartbeat") { [self] in loop() }
        }
    }

    private func loop() {
        var failing = false
        while true {
            // Written every second even when unchanged: the row's time is the heartbeat.
            if let (id, status) = latest.withLock({ $0 }) {
                do {
                    try write(id: id, status: status)
                    if failing { logger.notice("worker heartbeat written to the database again") }
                    failing = false
                } catch {
                    if !failing {
                        logger.error(
                            "cannot write the worker heartbeat to the database",
                            metadata: ["error": "\(error)"]
                        )
                    }
                    failing = true
                }
            }
            usleep(1_000_000)
        }
    }

    private func write(id: String, status: [UInt8]) throws {
        let host = String(id.split(separator: "/").first ?? Substring(id))
        try pool.transaction { connection in
            try connection.execute(
                """
                INSERT INTO mail_workers (id, host, updated_at, status) VALUES ($1, $2, now(), $3)
                ON CONFLICT (id) DO UPDATE SET updated_at = now(), status = excluded.status
                """,
                [id, host, String(decoding: status, as: UTF8.self)]
            )
            try connection.execute(
                "DELETE FROM mail_workers WHERE updated_at < now() - make_interval(secs => $1::float8)",
                ["\(Self.forgetAfter)"]
            )
        }
    }

    /// Every row, by id.
    func all() -> [WorkerHeartbeat] {
        let found = try? pool.with { connection in
            try connection.execute(
                "SELECT id, host, extract(epoch FROM updated_at)::float8, status FROM mail_workers ORDER BY id"
            )
        }
        return (found?.rows ?? []).compactMap { row in
            guard let id = row[0], let host = row[1], let at = PostgresQueueStore.date(row[2]), let status = row[3]
            else { return nil }
            return WorkerHeartbeat(id: id, host: host, updatedAt: at, status: Array(status.utf8))
        }
    }
}
