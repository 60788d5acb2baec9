import Platform
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An append-only log file that rotates by size, like logrotate's `size` + `rotate N`
/// (and the seed's RotatingFileHandler): when a line would take `path` past `maxBytes`,
/// `path.(N-1)` becomes `path.N`, ..., `path` becomes `path.1`, and a new `path` starts.
/// The oldest backup beyond `backups` is deleted. Safe to share between threads of one
/// process; each process writes its own file.
public final class RotatingLogFile: Sendable {
    public let path: String
    public let maxBytes: Int
    public let backups: Int
    private let state: Mutex<(fd: Int32, size: Int)>

    /// - Throws: `SystemError` when the file cannot be opened.
    public init(path: String, maxBytes: Int, backups: Int) throws {
        self.path = path
        self.maxBytes = maxBytes
        self.backups = backups
        let fd = try Syscall.open(path, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        let size = (try? Syscall.fileStatus(fd, path: path)).map { Int($0.st_size) } ?? 0
        state = Mutex((fd, size))
    }

    deinit {
        state.withLock { _ = Glibc.close($0.fd) }
    }

    /// Appends `line` (which should end in "\n"), rotating first if it would not fit.
    /// A write that fails is dropped: logging must never stop the program.
    public func write(_ line: String) {
        let bytes = Array(line.utf8)
        state.withLock { state in
            if state.size > 0, state.size + bytes.count > maxBytes { rotate(&state) }
            let written = bytes.withUnsafeBytes { Glibc.write(state.fd, $0.baseAddress, $0.count) }
            if written > 0 { state.size += written }
        }
    }

    private func rotate(_ state: inout (fd: Int32, size: Int)) {
        if backups == 0 {
            try? Syscall.truncate(state.fd, path: path)
            state.size = 0
            return
        }
        // Each step may fail (a backup missing is normal); logging goes on regardless.
        try? Syscall.unlink("\(path).\(backups)")
        for n in stride(from: backups - 1, through: 1, by: -1) {
            try? Syscall.rename("\(path).\(n)", "\(path).\(n + 1)")
        }
        try? Syscall.rename(path, "\(path).1")
        guard let fd = try? Syscall.open(path, O_WRONLY | O_CREAT | O_APPEND, 0o640) else { return }
        Glibc.close(state.fd)
        state = (fd, 0)
    }
}
