import Foundation
import Platform
import Queue

#if canImport(Glibc)
import Glibc
#endif

/// One mailworkerd per data directory, unless the operator asks for several
/// (`WORKERD_SHARED=true`): an exclusive flock(2) on `data/status/mailworkerd.lock`,
/// which holds the owner's pid. The kernel releases it when the process exits or dies.
final class InstanceLock {
    /// Whether this process holds the lock (the primary instance).
    let isPrimary: Bool
    private let fd: Int32

    enum Failure: Error, CustomStringConvertible {
        case held(path: String, pid: String)

        var description: String {
            switch self {
            case .held(let path, let pid):
                "another mailworkerd (pid \(pid)) already runs on this data directory (\(path) is locked); "
                    + "stop it, or set WORKERD_SHARED=true to run several on purpose"
            }
        }
    }

    /// - Throws: `Failure.held` when another instance holds the lock and `shared` is false;
    ///   `SystemError` when the lock file cannot be opened.
    init(layout: QueueLayout, shared: Bool) throws {
        let path = layout.status + "/mailworkerd.lock"
        fd = try Syscall.open(path, O_RDWR | O_CREAT, 0o644)
        isPrimary = try Syscall.tryLock(fd, path: path)
        if isPrimary {
            // The pid is only for the message a second instance prints: a failure to write
            // it is worth a line, not a refusal to start (the lock is what counts).
            let pid = Array("\(getpid())\n".utf8)
            do {
                try Syscall.replaceContents(fd, with: pid, path: path)
            } catch {
                FileHandle.standardError.write(Data("warning: cannot write the pid: \(error)\n".utf8))
            }
        } else if !shared {
            let holder = (try? Syscall.readFile(path)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
            Glibc.close(fd)
            throw Failure.held(path: path, pid: holder.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    deinit {
        Glibc.close(fd)
    }
}
