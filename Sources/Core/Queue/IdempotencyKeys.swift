import Digest
import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// Idempotency keys (`Idempotency-Key` on `POST /email` and the batch route), one small file
/// each in `data/idempotency/`, named by the SHA-256 of the user and the key (so a key's
/// characters never reach a path). The file is held with an flock(2) while its request is
/// handled, so a repeat arriving meanwhile, in any thread or process, is told to wait.
///
/// The file is append-only, one JSON line per step:
/// 1. the reservation (`Reservation.Line`): the request's digest and the request id chosen,
///    fsynced with its directory entry *before* the email is enqueued;
/// 2. the answer given, appended and fdatasynced once the email is stored.
///
/// Crash windows (crash points `idempotency.*`, and `enqueue.*` between them), and what a
/// retry with the same key finds:
/// - before the reservation is durable: no reservation (a torn first line is read as none):
///   the retry is a new request; nothing was stored.
/// - reserved, email not stored: the retry finds the reservation, no email under its id,
///   and stores the email under that id: one email.
/// - email stored, answer not appended: the retry finds the email by the reserved id and
///   answers for it (replayed): one email.
/// So a retried request never makes a second email, and a key never names an email that was
/// not stored (a reservation without an email is completed by the retry).
public final class IdempotencyKeys: IdempotencyStore {
    public let directory: String
    /// `IDEMPOTENCY_TTL_HOURS` in seconds: an older record no longer binds its key.
    public let ttl: TimeInterval

    /// The longest key accepted, in characters.
    public static let maxKeyLength = 256

    /// - Throws: `SystemError` if the folder cannot be created.
    public init(directory: String, ttl: TimeInterval) throws {
        self.directory = directory
        self.ttl = ttl
        try Syscall.makeDirectories(directory, mode: 0o700)
    }

    /// Why `key` cannot be an idempotency key, or nil: 1 to 256 printable ASCII characters.
    /// The same rule for every store.
    public static func problem(_ key: String) -> String? {
        let scalars = key.unicodeScalars
        if scalars.isEmpty || scalars.count > maxKeyLength { return "must be 1 to \(maxKeyLength) characters" }
        if !scalars.allSatisfy({ $0.value >= 0x20 && $0.value <= 0x7E }) {
            return "may hold only printable ASCII characters"
        }
        return nil
    }

    /// Looks up, and when free takes, `key` for `user`'s request whose canonical body digest
    /// is `requestDigest`, reserving `count` request ids (one per email of a batch). A
    /// `.proceed` holds the key until `Reservation.finish` or its release.
    /// - Throws: `SystemError` from the file operations.
    public func begin(
        key: String,
        user: String?,
        requestDigest: String,
        count: Int,
        now: Date
    ) throws -> IdempotencyBegin {
        let path = directory + "/" + SHA256.hex(Array((user ?? "").utf8) + [0] + Array(key.utf8)) + ".json"
        while true {
            let fd = try Syscall.open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            var keep = false
            defer { if !keep { _ = Glibc.close(fd) } }
            guard try Syscall.tryLock(fd, path: path) else { return .inProgress }
            // Pruned (unlinked) between our open and our lock: that inode is no one's record.
            guard Syscall.names(path, file: fd) else { continue }
            let lines = String(decoding: try Syscall.readAll(fd, path: path), as: UTF8.self)
                .split(separator: "\n", omittingEmptySubsequences: false)
            let decoder = QueueCoding.decoder()
            let reserved = lines.first.flatMap { try? decoder.decode(Reservation.Line.self, from: Data($0.utf8)) }
            if let reserved, now.timeIntervalSince(reserved.createdAt) < ttl {
                guard reserved.requestDigest == requestDigest else { return .mismatch }
                if lines.count >= 3, !lines[1].isEmpty {  // the answer line, complete (newline-ended)
                    return .replay(Array(lines[1].utf8))
                }
                keep = true
                let first = Array(lines[0].utf8) + [UInt8(ascii: "\n")]
                return .proceed(Reservation(fd: fd, path: path, line: reserved, firstLine: first), resumed: true)
            }
            // No record (or a torn first line, or an expired one): reserve it for this request.
            let ids = RequestID.distinct(max(1, count), at: now)
            let line = Reservation.Line(
                requestID: ids[0],
                requestIDs: count > 1 ? ids : nil,
                requestDigest: requestDigest,
                createdAt: now
            )
            var bytes = Array(try QueueCoding.encoder().encode(line))
            bytes.append(UInt8(ascii: "\n"))
            try Syscall.replaceContents(fd, with: bytes, path: path)
            try Syscall.fsync(fd, path: path)
            try Syscall.fsyncDirectory(directory)
            CrashPoint.reach("idempotency.reserved")
            keep = true
            return .proceed(Reservation(fd: fd, path: path, line: line, firstLine: bytes), resumed: false)
        }
    }

    /// Deletes records older than the TTL that no request holds. Returns how many.
    /// - Throws: `SystemError` when the folder cannot be listed.
    @discardableResult
    public func prune(now: Date) throws -> Int {
        var pruned = 0
        for name in try Syscall.listDirectory(directory) where name.hasSuffix(".json") {
            let path = directory + "/" + name
            guard let modified = Syscall.modificationTime(path), now.timeIntervalSince(modified) >= ttl,
                let fd = try? Syscall.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            else { continue }
            defer { _ = Glibc.close(fd) }
            // Held by a request: not ours to remove. A request that opens it after our unlink
            // finds its path names another file, and starts over (`begin`).
            guard (try? Syscall.tryLock(fd, path: path)) == true, Syscall.names(path, file: fd) else { continue }
            if (try? Syscall.unlink(path)) != nil { pruned += 1 }
        }
        return pruned
    }
}

/// A key taken for one request: store the email under `requestID`, then `finish` with the
/// answer. Dropping it without `finish` leaves the reservation for a retry to complete.
public final class Reservation: KeyReservation, @unchecked Sendable {
    /// The reservation line, the first of a record.
    struct Line: Codable {
        let requestID: String
        /// A batch's ids, one per item in order (the first is `requestID`); nil for one email.
        let requestIDs: [String]?
        let requestDigest: String
        let createdAt: Date

        enum CodingKeys: String, CodingKey {
            case requestID = "request_id"
            case requestIDs = "request_ids"
            case requestDigest = "request_digest"
            case createdAt = "created_at"
        }
    }

    private var fd: Int32
    private let path: String
    private let line: Line
    /// The reservation line as the file holds it, newline included.
    private let firstLine: [UInt8]

    /// A batch's request ids, one per item in order (the first is a single email's).
    public var requestIDs: [String] { line.requestIDs ?? [line.requestID] }

    init(fd: Int32, path: String, line: Line, firstLine: [UInt8]) {
        self.fd = fd
        self.path = path
        self.line = line
        self.firstLine = firstLine
    }

    /// Records `answer` (one line of JSON) as the key's answer, durably, and frees the key.
    /// - Throws: `SystemError`; the key is freed all the same, and a retry finds the email
    ///   by its reserved id.
    public func finish(answer: [UInt8]) throws {
        defer { release() }
        CrashPoint.reach("idempotency.before-answer")
        // The reservation line and the answer, written from offset 0 over what is there, then
        // cut to length: the first line's bytes are the same, so no crash in between tears it
        // (a torn answer after it reads as no answer; the next retry writes it again).
        let bytes = firstLine + answer.filter { $0 != UInt8(ascii: "\n") } + [UInt8(ascii: "\n")]
        try Syscall.writeAll(fd, bytes, at: 0, path: path)
        try Syscall.truncate(fd, to: bytes.count, path: path)
        try Syscall.fsync(fd, path: path)
    }

    /// Frees the key without an answer (closing the file drops the lock).
    public func release() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    deinit {
        release()
    }
}
