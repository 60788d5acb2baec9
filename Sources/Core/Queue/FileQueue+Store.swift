import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// The parts of `QueueStore` the file queue answers from its folders: the census, health,
/// arrivals (inotify), and pruning of the trash.
extension FileQueue {
    public func census(limit: Int, now: Date) throws -> QueueCensus.Report {
        try census.take(limit: limit, now: now)
    }

    /// The queue folder exists and is writable, every folder a state change renames into is
    /// there, and nothing is set aside in `corrupt/`.
    public func healthProblems(reported: [String]) -> [String] {
        let path = layout.queue
        guard let info = Syscall.status(path) else { return ["\(path) does not exist"] }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return ["\(path) is not a directory"] }
        guard Syscall.canWriteDirectory(path) else { return ["\(path) is not writable"] }
        var findings = reported.prefix(5).map { "cannot handle \($0)" }
        for folder in layout.renameFolders {
            let type = Syscall.entryStatus(folder).map { $0.st_mode & S_IFMT }
            if type == nil || (type != S_IFDIR && Syscall.entryStatus(folder + "/.") == nil) {
                findings.append("\(folder) is missing (mailworkerd recreates it at its next sweep)")
            }
        }
        let corrupt = ((try? Syscall.listDirectory(layout.corrupt)) ?? []).filter { !AtomicFile.isTemporary($0) }
            .sorted()
        if !corrupt.isEmpty {
            let shown = corrupt.prefix(5).joined(separator: ", ") + (corrupt.count > 5 ? ", ..." : "")
            findings.append(
                "\(corrupt.count) \(corrupt.count == 1 ? "entry" : "entries") set aside in \(layout.corrupt) (\(shown))"
            )
        }
        return findings
    }

    public var pendingCounts: (pending: Int, deferred: Int) { indexCounts }

    /// An inotify watch on the queue folder (`QueueWatcher`): arrivals go into the index, an
    /// overflow of the kernel's event queue marks it stale. From now on the index is trusted
    /// between re-reads.
    public func watchArrivals(_ arrived: @escaping @Sendable () -> Void) throws -> any ArrivalWatch {
        let watcher = try QueueWatcher(directory: layout.queue) { [self] changes, overflowed in
            if overflowed { invalidate() } else { noteChanges(changes) }
            // Departures wake nobody: most are this process's own claims.
            if overflowed || changes.contains(where: { !$0.departed }) { arrived() }
        }
        useChangeNotifications()
        return watcher
    }

    public func refresh() { invalidate() }

    public func pruneFinished(olderThan age: TimeInterval, now: Date) throws -> Int {
        try pruneTrash(olderThan: age, now: now)
    }
}

extension QueueWatcher: ArrivalWatch {}
