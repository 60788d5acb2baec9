import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// The folders under the data directory and the names files take in them.
///
/// ```
///                 enqueue                 claim (rename)
///   (responder) ----------> queue/B.json ---------------> queue/active/B.processing.json
///                           |  ^   ^                          |  |  |
///              cancel       |  |   | transient failure:       |  |  | sent, or not a valid
///   (rename, fsynced)       |  |   +-- rewritten, renamed back+  |  | entry: rename
///                           v  +-- release / stale claim         |  v
///       trash/B.canceled.json                                    |  trash/B.sent.json
///                   permanent failure or retries exhausted:      |
///                   dead_letter/B.json (reason, attempts, email) <+
/// ```
/// In `queue/`, an email is `scheduled` (its `send_at` not reached), `queued` or `deferred`
/// (attempted before); `EmailState` names every state the lookup answers.
/// `B` is `batch_{timestamp_ms}_{uuid8}`. The folder and suffix are the state; every change
/// of state is one rename(2) (or one atomic write followed by unlinking the claim). Claims
/// live in the small `queue/active/` (as postfix's active queue), so taking one inserts a
/// name into a directory of a few entries, not into one of 100,000 (measured: claims at
/// 100,000 pending keep 93% of their rate at 1,000, against 86% with claims in `queue/`).
public struct QueueLayout: Sendable {
    public let root: String
    public var queue: String { root + "/queue" }
    /// Claimed files: `queue/active/B.processing.json`.
    public var active: String { root + "/queue/active" }
    public var trash: String { root + "/trash" }
    public var deadLetter: String { root + "/dead_letter" }
    /// Emails an operator holds out of delivery (`mailctl hold`), as `B.json`.
    public var held: String { root + "/held" }
    /// Entries that are not valid queue files (not regular, unreadable, not decodable, bad
    /// addresses), set aside with the reason in their name. Never pruned: an operator looks.
    public var corrupt: String { root + "/corrupt" }
    public var outbox: String { root + "/outbox" }
    public var status: String { root + "/status" }
    /// Idempotency keys' records (`IdempotencyKeys`), one file per user and key.
    public var idempotency: String { root + "/idempotency" }
    /// The suppression list: one file per address (`FileSuppressionList`).
    public var suppressions: String { root + "/suppressions" }
    /// Delivery events for the webhook: `pending/` and `failed/` (`FileEventLog`).
    public var events: String { root + "/events" }
    /// mailworkerd's control socket, on which it carries out `POST /process-batch` for
    /// mailfcgi (which holds no relay settings).
    public var controlSocket: String { status + "/mailworkerd.sock" }

    public init(root: String) {
        self.root = root
    }

    /// Creates every folder that is missing.
    /// - Throws: `SystemError` from mkdir(2).
    public func create() throws {
        for dir in [queue, active, trash, deadLetter, corrupt, held, outbox, status] {
            try Syscall.makeDirectories(dir)
        }
    }

    /// The folders a state change renames between: each rename(2) is atomic only within one
    /// filesystem, and across two it fails with `EXDEV`.
    public var renameFolders: [String] { [queue, active, trash, deadLetter, corrupt, held] }

    /// Checks that a file can be renamed from `queue/` into every other folder of
    /// `renameFolders` (an operator may have mounted, bind-mounted or symlinked one
    /// elsewhere). Comparing devices catches a mount or link to another filesystem; a bind
    /// mount keeps the device but still refuses renames across it, so a probe file is
    /// renamed into each folder and removed.
    /// - Throws: `QueueLayoutError.crossesFilesystems` naming the first folder that fails,
    ///   or `SystemError` from stat(2), open(2), rename(2) or unlink(2).
    public func checkSingleFilesystem() throws {
        let device = try Syscall.device(of: queue)
        // Unique across processes and PID namespaces; one a kill leaves is removed by recovery.
        let probeName = AtomicFile.temporaryPrefix + "rename-probe-" + RequestID.make()
        let probe = queue + "/" + probeName
        try Syscall.close(try Syscall.open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0o600), path: probe)
        defer { _ = Self.removeIgnoringErrors(probe) }
        for folder in renameFolders.dropFirst() {
            if try Syscall.device(of: folder) != device {
                throw QueueLayoutError.crossesFilesystems(folder: folder, queue: queue)
            }
            do {
                try Syscall.renameNoReplace(probe, folder + "/" + probeName)
            } catch {
                if error.errno == EXDEV { throw QueueLayoutError.crossesFilesystems(folder: folder, queue: queue) }
                throw error
            }
            try Syscall.rename(folder + "/" + probeName, probe)
        }
    }

    /// The largest queue file read (512 MiB): eight times the largest request body
    /// (`MAX_BODY_BYTES` at most 64 MiB), room for JSON escapes. A larger file is not ours
    /// and is set aside unread, so it cannot exhaust memory at every start.
    public static let maxEntryBytes = 512 << 20

    static let pendingSuffix = ".json"
    static let claimedSuffix = ".processing.json"

    public static func pendingName(_ base: String) -> String { base + pendingSuffix }
    /// A claimed file's path relative to `queue`.
    public static func claimedName(_ base: String) -> String { "active/" + base + claimedSuffix }

    /// The base name of a pending file, or nil for claims, temp files and strangers.
    static func pendingBase(_ fileName: String) -> String? {
        guard fileName.hasPrefix("batch_"), fileName.hasSuffix(pendingSuffix),
            !fileName.hasSuffix(claimedSuffix)
        else { return nil }
        return String(fileName.dropLast(pendingSuffix.count))
    }

    /// When the email named `base` (`batch_{timestamp_ms}_{uuid8}`) was accepted, from its name.
    static func acceptedAt(_ base: String) -> Date? {
        let parts = base.split(separator: "_")
        guard parts.count == 3, let milliseconds = Int64(parts[1]) else { return nil }
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    private static func removeIgnoringErrors(_ path: String) -> Bool {
        (try? Syscall.unlink(path)) != nil
    }

    /// A delivered email whose move into the trash failed: the claim renamed within
    /// `queue/active/` (`active/B.sent.json`), so that recovery files it in the trash and
    /// never sends it again. Relative to `queue`.
    static func sentName(_ base: String) -> String { "active/" + base + sentSuffix }
    static let sentSuffix = ".sent.json"

    /// The base name of a delivered-but-unfiled entry in `queue/active/`, or nil.
    static func sentBase(_ fileName: String) -> String? {
        guard fileName.hasPrefix("batch_"), fileName.hasSuffix(sentSuffix) else { return nil }
        return String(fileName.dropLast(sentSuffix.count))
    }

    /// The base name of a claimed file, or nil.
    static func claimedBase(_ fileName: String) -> String? {
        guard fileName.hasPrefix("batch_"), fileName.hasSuffix(claimedSuffix) else { return nil }
        return String(fileName.dropLast(claimedSuffix.count))
    }

    /// `B.{status}.json` in the trash: derived from the request id alone, so that a lookup
    /// finds a finished email without listing the trash (`B` holds the time it was accepted;
    /// the rename into the trash sets the file's change time, which pruning reads).
    static func trashName(_ base: String, status: TrashStatus) -> String {
        "\(base).\(status.rawValue).json"
    }

    /// `NAME.{reason}.{yyyyMMdd'T'HHmmssSSS'Z'}` in `corrupt/`: the entry's own name, why it
    /// was set aside, and when.
    static func corruptName(_ name: String, reason: CorruptReason, at date: Date) -> String {
        "\(name).\(reason.rawValue).\(compactStamp(date))"
    }

    private static func compactStamp(_ date: Date) -> String {
        Timestamp.iso8601(date).filter { $0 != "-" && $0 != ":" && $0 != "." }
    }
}

/// How an email left the queue for the trash (the middle of its trash name).
public enum TrashStatus: String, Sendable, CaseIterable {
    /// Delivered (to every recipient, or to some and refused for good to the others).
    case sent
    /// Canceled by the client (`DELETE /email/{request_id}`) before it was sent.
    case canceled
}

/// Why an entry was set aside in `corrupt/` (the raw value goes into its new name).
public enum CorruptReason: String, Sendable, CaseIterable {
    /// A symbolic link: queue files are never read through a link.
    case symlink
    /// A directory, FIFO, device or socket under a queue file's name.
    case notRegular = "not_regular"
    /// The daemon cannot open or read it (permissions, I/O error).
    case unreadable
    /// Not JSON at all.
    case invalidJSON = "invalid_json"
    /// JSON, but not a queue entry (missing or mistyped fields).
    case invalidEntry = "invalid_entry"
    /// A queue entry whose addresses or header values cannot be sent (e.g. a CR or LF).
    case invalidAddress = "invalid_address"
    /// A name in `queue/active/` that is not a claim.
    case strayEntry = "stray_entry"
    /// A file with more than one name (a hard link): each name would be sent.
    case hardLink = "hard_link"
    /// Larger than any queue entry can be (`QueueLayout.maxEntryBytes`).
    case tooLarge = "too_large"
}

/// A data directory whose folders cannot hold the queue's renames.
public enum QueueLayoutError: Error, CustomStringConvertible, Equatable {
    case crossesFilesystems(folder: String, queue: String)

    public var description: String {
        switch self {
        case .crossesFilesystems(let folder, let queue):
            "\(folder) is on another filesystem than \(queue) (mounted or linked elsewhere?): "
                + "moving an email between them cannot be one atomic rename; keep every folder "
                + "of DATA_DIR on one filesystem"
        }
    }
}
