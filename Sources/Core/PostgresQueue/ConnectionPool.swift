import Foundation
import Synchronization

/// Connections to one database, lent to one thread at a time. The daemons' threads block on
/// their statements (as they block on files with the file queue), so a pool holds at most
/// as many connections as threads use it at once; a connection found broken is dropped and
/// the next use opens a new one, so the pool heals by itself when the server comes back.
final class ConnectionPool: Sendable {
    let url: String
    let applicationName: String
    private let idle = Mutex<[DatabaseConnection]>([])

    init(url: String, applicationName: String) {
        self.url = url
        self.applicationName = applicationName
    }

    /// Runs `body` with a connection of the pool (a new one when none is idle).
    /// - Throws: what `body` throws, or `DatabaseError` when no connection can be made.
    @discardableResult
    func with<T>(_ body: (DatabaseConnection) throws -> T) throws -> T {
        let connection = try take()
        do {
            let result = try body(connection)
            giveBack(connection)
            return result
        } catch {
            giveBack(connection)
            throw error
        }
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    /// - Throws: what `body` throws, or `DatabaseError` from BEGIN or COMMIT (a COMMIT that
    ///   fails because the connection broke leaves it unknown whether the transaction
    ///   committed; every caller's writes are safe to redo).
    @discardableResult
    func transaction<T>(_ body: (DatabaseConnection) throws -> T) throws -> T {
        try with { connection in
            try connection.execute("BEGIN")
            do {
                let result = try body(connection)
                try connection.execute("COMMIT")
                return result
            } catch {
                if !connection.isBroken { _ = try? connection.execute("ROLLBACK") }
                throw error
            }
        }
    }

    /// Opens a connection that is not the pool's (LISTEN, a held lock): the caller owns it.
    func dedicated() throws(DatabaseError) -> DatabaseConnection {
        try DatabaseConnection(url: url, applicationName: applicationName)
    }

    /// Takes a connection out of the pool (a new one when none is idle) for a caller that
    /// holds it across calls, as an idempotency key's transaction is held for the length of
    /// its request; `giveBack` returns it.
    /// - Throws: `DatabaseError` when no connection can be made.
    func take() throws(DatabaseError) -> DatabaseConnection {
        if let connection = idle.withLock({ $0.popLast() }) { return connection }
        return try DatabaseConnection(url: url, applicationName: applicationName)
    }

    /// Returns a connection to the pool: rolled back if a transaction is still open, dropped
    /// if broken.
    func giveBack(_ connection: DatabaseConnection) {
        guard !connection.isBroken else { return }
        if connection.inTransaction { _ = try? connection.execute("ROLLBACK") }
        guard !connection.isBroken else { return }
        idle.withLock { $0.append(connection) }
    }
}
