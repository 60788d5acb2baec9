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
        var open = stat(), named = stat()
        guard fstat(fd, &open) == 0, stat(path, &named) == 0 else { return false }
        return open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }

    /// Reads from `fd` to its end.
    public static func readAll(_ fd: Int32, path: String) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
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

    /// futimens(2) to now: the file's modification time becomes the current time.
    public static func touch(_ fd: Int32, path: String) throws(SystemError) {
        try retrying("futimens", path) { futimens(fd, nil) }
    }

    /// unlink(2).
    public static func unlink(_ path: String) throws(SystemError) {
        try retrying("unlink", path) { Glibc.unlink(path) }
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

    /// Reads a whole regular file. Throws `SystemError` from open(2) or read(2).
    public static func readFile(_ path: String) throws(SystemError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { _ = Glibc.close(fd) }
        return try readAll(fd, path: path)
    }

    /// A file's modification time (stat(2)), or nil if it cannot be read.
    public static func modificationTime(_ path: String) -> Date? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
    }

    /// A file's inode change time (stat(2) `st_ctim`; rename(2) sets it), or nil.
    public static func changeTime(_ path: String) -> Date? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Date(timeIntervalSince1970: Double(info.st_ctim.tv_sec) + Double(info.st_ctim.tv_nsec) / 1e9)
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
