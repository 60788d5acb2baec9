import CPostgres
import Foundation
import Queue

#if canImport(Glibc)
import Glibc
#endif

/// An error from PostgreSQL or from reaching it.
public struct DatabaseError: StoreUnavailableError, Sendable {
    /// The SQLSTATE code (`23505` unique violation, `55P03` lock not available, ...), or nil
    /// when the connection failed before the server answered.
    public let sqlState: String?
    public let message: String

    public init(sqlState: String?, _ message: String) {
        self.sqlState = sqlState
        self.message = message
    }

    public var description: String {
        sqlState.map { "PostgreSQL \($0): \(message)" } ?? "PostgreSQL: \(message)"
    }

    /// Unique violation: a row with this key exists.
    var isUniqueViolation: Bool { sqlState == "23505" }
    /// `FOR UPDATE NOWAIT` found the row locked.
    var isLockNotAvailable: Bool { sqlState == "55P03" }
}

/// The rows a statement returned, as text (libpq's text format), and how many rows it changed.
struct DatabaseRows {
    var rows: [[String?]]
    /// `PQcmdTuples`: rows inserted, updated or deleted (0 for a SELECT).
    var affected: Int

    var first: [String?]? { rows.first }
}

/// One libpq connection. Not thread-safe: a `ConnectionPool` lends it to one thread at a time.
///
/// Statements run with `PQexecParams` and text parameters, so no value is ever spliced into
/// SQL. The connection keeps TCP keepalives and a `tcp_user_timeout` short (`Timeouts`), so a
/// host cut off from the database finds out within seconds rather than at the kernel's
/// default of about 15 minutes, and its claims lapse instead of its threads hanging.
final class DatabaseConnection: @unchecked Sendable {
    private let raw: OpaquePointer

    /// Settings libpq is given before the URL, which may override any of them.
    static let defaults: [(String, String)] = [
        ("connect_timeout", "5"),
        ("keepalives", "1"),
        ("keepalives_idle", "5"),
        ("keepalives_interval", "2"),
        ("keepalives_count", "2"),
        ("tcp_user_timeout", "10000"),  // milliseconds
    ]

    /// Connects to `url` (a libpq URI or key=value string).
    /// - Throws: `DatabaseError` when the server cannot be reached or refuses the login.
    init(url: String, applicationName: String) throws(DatabaseError) {
        // Keywords are processed in order and the last value wins: the URL comes last, so
        // its settings (sslmode, timeouts) override these defaults.
        let pairs = Self.defaults + [("application_name", applicationName), ("dbname", url)]
        let keywords = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer {
            for pointer in keywords + values { free(pointer) }
        }
        var keywordPointers: [UnsafePointer<CChar>?] = keywords.map { UnsafePointer($0) } + [nil]
        var valuePointers: [UnsafePointer<CChar>?] = values.map { UnsafePointer($0) } + [nil]
        guard let connection = PQconnectdbParams(&keywordPointers, &valuePointers, 1) else {
            throw DatabaseError(sqlState: nil, "out of memory connecting")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            throw DatabaseError(sqlState: nil, "cannot connect (DATABASE_URL): \(message)")
        }
        cpostgres_silence_notices(connection)
        raw = connection
    }

    deinit {
        PQfinish(raw)
    }

    /// Whether the connection is gone (the server closed it, the network failed): a pool
    /// drops such a connection instead of lending it again.
    var isBroken: Bool { PQstatus(raw) != CONNECTION_OK }

    /// Whether a transaction is open (or failed and not yet rolled back).
    var inTransaction: Bool { PQtransactionStatus(raw) != PQTRANS_IDLE }

    /// The socket, for waiting on notifications with poll(2).
    var socket: Int32 { PQsocket(raw) }

    /// Runs `sql` with `$1`... bound to `parameters` (nil is NULL).
    /// - Throws: `DatabaseError` with the server's SQLSTATE, or without one when the
    ///   connection failed.
    @discardableResult
    func execute(_ sql: String, _ parameters: [String?] = []) throws(DatabaseError) -> DatabaseRows {
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { for copy in copies { free(copy) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        let result = pointers.withUnsafeBufferPointer { buffer in
            PQexecParams(raw, sql, Int32(parameters.count), nil, buffer.baseAddress, nil, nil, 0)
        }
        guard let result else {
            throw DatabaseError(sqlState: nil, Self.trimmed(PQerrorMessage(raw)))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            break
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = PQresultErrorMessage(result).map { Self.trimmed($0) } ?? "unknown error"
            throw DatabaseError(sqlState: state, message.isEmpty ? Self.trimmed(PQerrorMessage(raw)) : message)
        }
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<Int32(rowCount) {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) != 0 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, row, column)))
                }
            }
            rows.append(values)
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return DatabaseRows(rows: rows, affected: affected)
    }

    /// Runs several statements without parameters (`PQexec`: a migration's script).
    /// - Throws: `DatabaseError` from the first statement that fails.
    func executeScript(_ sql: String) throws(DatabaseError) {
        guard let result = PQexec(raw, sql) else {
            throw DatabaseError(sqlState: nil, Self.trimmed(PQerrorMessage(raw)))
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw DatabaseError(sqlState: state, Self.trimmed(PQresultErrorMessage(result)))
        }
    }

    /// Reads what arrived on the socket and returns the channels notified since the last call.
    /// - Throws: `DatabaseError` when the connection failed.
    func notifications() throws(DatabaseError) -> [String] {
        guard PQconsumeInput(raw) == 1 else {
            throw DatabaseError(sqlState: nil, Self.trimmed(PQerrorMessage(raw)))
        }
        var channels: [String] = []
        while let notice = PQnotifies(raw) {
            channels.append(String(cString: notice.pointee.relname))
            PQfreemem(notice)
        }
        return channels
    }

    private static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "" }
        return String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
