import CLinux
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The one place where Core calls the POSIX file API (open(2), write(2), fsync(2),
/// rename(2), unlink(2), mkdir(2)). Each call retries on `EINTR` and throws a
/// `SystemError` naming the call, the path and `errno`, in the manner of swift-nio's
/// `NIOPosix/System.swift`.
public enum Syscall {
    /// Runs `body` until it returns something other than -1 with `errno == EINTR`.
    @discardableResult
    static func retrying(_ call: String, _ path: String, _ body: () -> Int32) throws(SystemError) -> Int32 {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SystemError(call: call, path: path, errno: code)
        }
    }

    /// open(2). Returns the file descriptor. `mode` applies when `flags` has `O_CREAT`.
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws(SystemError) -> Int32 {
        try retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// close(2). An `EINTR` from close is not retried (Linux has already released the descriptor).
    public static func close(_ fd: Int32, path: String) throws(SystemError) {
        if Glibc.close(fd) == -1, Glibc.errno != EINTR {
            throw SystemError(call: "close", path: path, errno: Glibc.errno)
        }
    }

    /// write(2) of the whole buffer, continuing after short writes.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written == -1 {
                if Glibc.errno == EINTR { continue }
                throw SystemError(call: "write", path: path, errno: Glibc.errno)
            }
            offset += written
        }
    }

    /// fsync(2): the file's data and metadata reach stable storage.
    public static func fsync(_ fd: Int32, path: String) throws(SystemError) {
        try retrying("fsync", path) { Glibc.fsync(fd) }
    }

    /// Opens a directory read-only, fsyncs it, and closes it, so that a rename or create
    /// inside it is durable (fsync(2), "Calling fsync() does not necessarily ensure that
    /// the entry in the directory containing the file has also reached disk").
    public static func fsyncDirectory(_ path: String) throws(SystemError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { _ = Glibc.close(fd) }
        try fsync(fd, path: path)
    }

    /// rename(2): atomically replaces `to` with `from` within one filesystem.
    public static func rename(_ from: String, _ to: String) throws(SystemError) {
        try retrying("rename", "\(from) -> \(to)") { Glibc.rename(from, to) }
    }

    /// renameat2(2) with `RENAME_NOREPLACE`: fails with `EEXIST` instead of replacing `to`.
    public static func renameNoReplace(_ from: String, _ to: String) throws(SystemError) {
        try retrying("renameat2", "\(from) -> \(to)") { clinux_rename_noreplace(from, to) }
    }

    /// flock(2) `LOCK_EX | LOCK_NB`: true when the lock was taken, false when another open
    /// file holds it. The kernel drops the lock when the holder closes it or dies.
    public static func tryLock(_ fd: Int32, path: String) throws(SystemError) -> Bool {
        while flock(fd, LOCK_EX | LOCK_NB) == -1 {
            let code = Glibc.errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK { return false }
            throw SystemError(call: "flock", path: path, errno: code)
        }
        return true
    }

    /// Whether `path` names the file open as `fd` (same device and inode, fstat(2)/stat(2)).
    public static func names(_ path: String, file fd: Int32) -> Bool {
        var open = stat()
        var named = stat()
        guard fstat(fd, &open) == 0, stat(path, &named) == 0 else { return false }
        return open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }

    /// Reads from `fd` to its end.
    public static func readAll(_ fd: Int32, path: String) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        // Room for the whole file at once: growing by doubling would hold up to twice its size.
        var status = stat()
        if fstat(fd, &status) == 0, status.st_size > 0 { result.reserveCapacity(Int(status.st_size)) }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == -1 {
                if Glibc.errno == EINTR { continue }
                throw SystemError(call: "read", path: path, errno: Glibc.errno)
            }
            if count == 0 { return result }
            result.append(contentsOf: chunk[0..<count])
        }
    }

    /// unlink(2).
    public static func unlink(_ path: String) throws(SystemError) {
        try retrying("unlink", path) { Glibc.unlink(path) }
    }

    /// Replaces an open file's contents with `bytes`: ftruncate(2) to zero, then pwrite(2)
    /// from offset 0 until all is written.
    /// - Throws: `SystemError` from either call (a short write retried; none left is `EIO`).
    public static func replaceContents(_ fd: Int32, with bytes: [UInt8], path: String) throws(SystemError) {
        try retrying("ftruncate", path) { ftruncate(fd, 0) }
        try writeAll(fd, bytes, at: 0, path: path)
    }

    /// pwrite(2) of all of `bytes` at `offset`, retried after a short write or EINTR.
    /// - Throws: `SystemError` from pwrite (a write of nothing is `EIO`).
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset + done))
            }
            if written == -1 {
                if Glibc.errno == EINTR { continue }
                throw SystemError(call: "pwrite", path: path, errno: Glibc.errno)
            }
            if written == 0 { throw SystemError(call: "pwrite", path: path, errno: EIO) }
            done += written
        }
    }

    /// ftruncate(2) of an open file to `length` bytes.
    public static func truncate(_ fd: Int32, to length: Int = 0, path: String) throws(SystemError) {
        try retrying("ftruncate", path) { ftruncate(fd, off_t(length)) }
    }

    /// chmod(2).
    public static func setMode(_ path: String, _ mode: mode_t) throws(SystemError) {
        try retrying("chmod", path) { chmod(path, mode) }
    }

    /// Whether this process may create and remove entries in the directory `path`
    /// (access(2) with `W_OK | X_OK`, against the real user, as the daemons run).
    public static func canWriteDirectory(_ path: String) -> Bool {
        access(path, W_OK | X_OK) == 0
    }

    /// stat(2), following links; nil if the path does not resolve.
    public static func status(_ path: String) -> stat? {
        var info = stat()
        return stat(path, &info) == 0 ? info : nil
    }

    /// mkdir(2) of `path` and any missing parents; an existing directory is not an error.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if Glibc.mkdir(prefix, mode) == -1 {
                let code = Glibc.errno
                if code == EEXIST { continue }
                throw SystemError(call: "mkdir", path: prefix, errno: code)
            }
        }
    }

    /// Reads a whole regular file. The open never blocks (`O_NONBLOCK`, so a FIFO planted
    /// under the name cannot hang the caller), and anything but a regular file is refused.
    /// - Parameter followSymlinks: false adds `O_NOFOLLOW`: a symbolic link fails with
    ///   `ELOOP` instead of being read through (queue files must be the files themselves).
    /// - Throws: `SystemError` from open(2) or read(2); `EISDIR` for a directory, `EINVAL`
    ///   for other non-regular files.
    /// - Parameter maxBytes: a larger file is not read (`EFBIG`), so a stranger cannot
    ///   exhaust memory.
    public static func readFile(
        _ path: String,
        followSymlinks: Bool = true,
        maxBytes: Int = .max
    ) throws(SystemError) -> [UInt8] {
        let fd = try openRegular(path, followSymlinks: followSymlinks)
        defer { _ = Glibc.close(fd) }
        if maxBytes < .max, try fileStatus(fd, path: path).st_size > maxBytes {
            throw SystemError(call: "read", path: path, errno: EFBIG)
        }
        return try readAll(fd, path: path)
    }

    /// Opens `path` read-only without blocking and checks with fstat(2) that it is a
    /// regular file; the descriptor is then set back to blocking mode.
    /// - Throws: `SystemError` from open(2) (`ELOOP` for a link without `followSymlinks`),
    ///   or with call `fstat` and `EISDIR` (a directory) or `EINVAL` (a device, FIFO, socket).
    public static func openRegular(_ path: String, followSymlinks: Bool = true) throws(SystemError) -> Int32 {
        let fd = try open(path, O_RDONLY | O_NONBLOCK | (followSymlinks ? 0 : O_NOFOLLOW))
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = Glibc.errno
            _ = Glibc.close(fd)
            throw SystemError(call: "fstat", path: path, errno: code)
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            _ = Glibc.close(fd)
            throw SystemError(call: "fstat", path: path, errno: type == S_IFDIR ? EISDIR : EINVAL)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// fstat(2) of an open file.
    /// - Throws: `SystemError` from fstat.
    public static func fileStatus(_ fd: Int32, path: String) throws(SystemError) -> stat {
        var info = stat()
        try retrying("fstat", path) { fstat(fd, &info) }
        return info
    }

    /// lstat(2): the entry itself, not what a symbolic link points to; nil if it is gone
    /// or cannot be read.
    public static func entryStatus(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    /// The device a path lives on (stat(2) `st_dev`, following links, as rename(2) does).
    /// - Throws: `SystemError` from stat(2).
    public static func device(of path: String) throws(SystemError) -> UInt64 {
        var info = stat()
        try retrying("stat", path) { stat(path, &info) }
        return UInt64(info.st_dev)
    }

    /// Free space and inodes on the filesystem holding `path`, for unprivileged users
    /// (statvfs(3) `f_bavail` x `f_frsize`, and `f_favail`).
    /// - Throws: `SystemError` from statvfs.
    public static func freeSpace(_ path: String) throws(SystemError) -> (bytes: UInt64, inodes: UInt64) {
        var info = statvfs()
        try retrying("statvfs", path) { statvfs(path, &info) }
        return (UInt64(info.f_bavail) * UInt64(info.f_frsize), UInt64(info.f_favail))
    }

    /// Sets a file's access and modification times to now by path, without following a
    /// link (utimensat(2) `AT_SYMLINK_NOFOLLOW`). Needs no free space, so a heartbeat can
    /// still be given by a process that cannot write a new file.
    public static func touch(path: String) throws(SystemError) {
        try retrying("utimensat", path) { utimensat(AT_FDCWD, path, nil, AT_SYMLINK_NOFOLLOW) }
    }

    /// An entry's modification time (lstat(2): a link's own), or nil if it cannot be read.
    public static func modificationTime(_ path: String) -> Date? {
        entryStatus(path).map { date($0.st_mtim) }
    }

    /// An entry's inode change time (lstat(2) `st_ctim`; rename(2) sets it, so it is when
    /// the entry was moved to where it is), or nil.
    public static func changeTime(_ path: String) -> Date? {
        entryStatus(path).map { date($0.st_ctim) }
    }

    static func date(_ time: timespec) -> Date {
        Date(timeIntervalSince1970: Double(time.tv_sec) + Double(time.tv_nsec) / 1e9)
    }

    /// Names and inode numbers in a directory (readdir(3) `d_name`, `d_ino`), without "."
    /// and "..". A file replaced by rename(2) shows a new inode number under the same name.
    public static func listDirectoryEntries(_ path: String) throws(SystemError) -> [(name: String, inode: UInt64)] {
        guard let dir = opendir(path) else {
            throw SystemError(call: "opendir", path: path, errno: Glibc.errno)
        }
        defer { closedir(dir) }
        var entries: [(name: String, inode: UInt64)] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { entries.append((name, UInt64(entry.pointee.d_ino))) }
        }
        return entries
    }

    /// Calls `body` with each name in a directory (readdir(3)), without "." and "..", as it
    /// reads them: a folder of a million names is never held whole.
    public static func forEachName(in path: String, _ body: (String) throws -> Void) throws {
        guard let dir = opendir(path) else {
            throw SystemError(call: "opendir", path: path, errno: Glibc.errno)
        }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { try body(name) }
        }
    }

    /// Names in a directory (readdir(3)), without "." and "..".
    public static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else {
            throw SystemError(call: "opendir", path: path, errno: Glibc.errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
