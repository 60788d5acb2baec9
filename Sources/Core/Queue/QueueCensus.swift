import Foundation
import MailModel
import Platform
import Synchronization

/// Counts of the queue's states and metadata of its first files, for `GET /status`.
///
/// Directory listings give the counts of each folder. Telling deferred from due emails
/// needs each pending file's `next_attempt_at`; a cache keyed by name and inode number
/// (readdir's `d_ino`, which changes when a deferral rewrites the file) means each file
/// is read once, so a census of 100,000 pending files costs a listing, not 100,000 reads.
public final class QueueCensus: Sendable {
    public let layout: QueueLayout
    private let cache = Mutex<[String: Entry]>([:])

    struct Entry {
        let inode: UInt64
        let notBefore: Date?
        /// Held back by its `send_at`, never attempted (`EmailState.scheduled` while not due).
        let scheduled: Bool
    }

    public init(layout: QueueLayout) {
        self.layout = layout
    }

    /// One queue file as `/status` describes it.
    public struct FileInfo: Encodable, Sendable {
        public let file: String
        public let request_id: String?
        /// `pending`, `scheduled`, `deferred` or `processing`.
        public let state: String
        public let priority: Int?
        public let retry_count: Int?
        public let next_attempt_at: String?
        public let created_at: String?
        public let size_bytes: Int

        public init(
            file: String,
            request_id: String?,
            state: String,
            priority: Int?,
            retry_count: Int?,
            next_attempt_at: String?,
            created_at: String?,
            size_bytes: Int
        ) {
            self.file = file
            self.request_id = request_id
            self.state = state
            self.priority = priority
            self.retry_count = retry_count
            self.next_attempt_at = next_attempt_at
            self.created_at = created_at
            self.size_bytes = size_bytes
        }
    }

    public struct Report: Sendable {
        public var pending = 0
        public var deferred = 0
        /// Waiting for their `send_at`.
        public var scheduled = 0
        public var processing = 0
        public var deadLetter = 0
        /// Held by an operator (`mailctl hold`).
        public var held = 0
        public var trash = 0
        /// Entries set aside in `corrupt/`.
        public var corrupt = 0
        /// The first `limit` files: claimed ones, then pending in name (arrival) order.
        public var files: [FileInfo] = []
        /// When the longest-waiting due email became due (its due time, or its acceptance,
        /// from its name), or nil when none is due.
        public var oldestDue: Date?
        /// Files in the queue directory: pending, scheduled, deferred and processing.
        public var total: Int { pending + scheduled + deferred + processing }

        public init() {}
    }

    /// Counts every folder and describes at most `limit` queue files.
    /// - Throws: `SystemError` when a folder cannot be listed.
    public func take(limit: Int, now: Date = Date()) throws -> Report {
        var report = Report()
        var pendingNames: [(base: String, inode: UInt64)] = []
        var claimed: [String] = []
        for entry in try Syscall.listDirectoryEntries(layout.queue) {
            if let base = QueueLayout.pendingBase(entry.name) { pendingNames.append((base, entry.inode)) }
        }
        // Delivered-but-unfiled entries (`B.sent.json`) still occupy the active folder.
        claimed = try Syscall.listDirectory(layout.active).compactMap {
            QueueLayout.claimedBase($0) ?? QueueLayout.sentBase($0)
        }
        report.processing = claimed.count
        // Counted as streams: the trash keeps days of sent mail, millions of names.
        var deadLetter = 0
        try Syscall.forEachName(in: layout.deadLetter) { if !AtomicFile.isTemporary($0) { deadLetter += 1 } }
        report.deadLetter = deadLetter
        var trash = 0
        try Syscall.forEachName(in: layout.trash) { _ in trash += 1 }
        report.trash = trash
        report.held =
            ((try? Syscall.listDirectory(layout.held)) ?? []).filter { QueueLayout.pendingBase($0) != nil }.count
        report.corrupt =
            ((try? Syscall.listDirectory(layout.corrupt)) ?? []).filter { !AtomicFile.isTemporary($0) }.count

        var fresh: [String: Entry] = [:]
        let known = cache.withLock { $0 }
        for (base, inode) in pendingNames {
            let entry: Entry
            if let cached = known[base], cached.inode == inode {
                entry = cached
            } else if let read = read(base) {
                entry = Entry(
                    inode: inode,
                    notBefore: read.nextAttemptAt,
                    scheduled: read.sendAt != nil && read.retryCount == 0
                )
            } else {
                continue  // claimed since the listing
            }
            fresh[base] = entry
            switch Self.state(entry, now: now) {
            case "scheduled": report.scheduled += 1
            case "deferred": report.deferred += 1
            default:
                report.pending += 1
                if let accepted = QueueLayout.acceptedAt(base) {
                    let due = max(accepted, entry.notBefore ?? accepted)
                    report.oldestDue = min(report.oldestDue ?? due, due)
                }
            }
        }
        cache.withLock { $0 = fresh }

        for base in claimed.sorted().prefix(limit) {
            report.files.append(describe(base, fileName: QueueLayout.claimedName(base), state: "processing"))
        }
        for (base, _) in pendingNames.sorted(by: { $0.base < $1.base }).prefix(max(0, limit - report.files.count)) {
            let state = fresh[base].map { Self.state($0, now: now) } ?? "pending"
            report.files.append(describe(base, fileName: QueueLayout.pendingName(base), state: state))
        }
        return report
    }

    /// `pending` (due), `scheduled` (its send_at ahead) or `deferred` (its next attempt ahead).
    private static func state(_ entry: Entry, now: Date) -> String {
        guard let due = entry.notBefore, due > now else { return "pending" }
        return entry.scheduled ? "scheduled" : "deferred"
    }

    private func read(_ base: String) -> QueuedEmail? {
        guard
            let bytes = try? Syscall.readFile(
                layout.queue + "/" + QueueLayout.pendingName(base),
                followSymlinks: false,
                maxBytes: QueueLayout.maxEntryBytes
            )
        else { return nil }
        return try? QueueCoding.decode(QueuedEmail.self, from: bytes)
    }

    private func describe(_ base: String, fileName: String, state: String) -> FileInfo {
        let bytes =
            (try? Syscall.readFile(
                layout.queue + "/" + fileName,
                followSymlinks: false,
                maxBytes: QueueLayout.maxEntryBytes
            )) ?? []
        let email = try? QueueCoding.decode(QueuedEmail.self, from: bytes)
        return FileInfo(
            file: fileName,
            request_id: email?.requestID,
            state: state,
            priority: email?.priority,
            retry_count: email?.retryCount,
            next_attempt_at: email?.nextAttemptAt.map(Timestamp.iso8601),
            created_at: email.map { Timestamp.iso8601($0.createdAt) },
            size_bytes: bytes.count
        )
    }
}
