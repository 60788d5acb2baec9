#if canImport(Glibc)
import Glibc
#endif

/// Durable, all-or-nothing file creation: the file at `path` either does not exist or holds
/// all of `contents`, also after a crash or `kill -9` at any point.
///
/// The sequence is the one postfix and the design's "Queue files" contract use: write a temp
/// file in the same directory (so the rename stays within one filesystem), fsync(2) it,
/// rename(2) it over the final name, then fsync(2) the directory so the new entry survives
/// a power loss. Temp files are named `.tmp-*`; `AtomicFile.isTemporary` recognises leftovers.
public enum AtomicFile {
    /// The prefix of in-progress temp files; a name with it is never a finished file.
    public static let temporaryPrefix = ".tmp-"

    /// Whether `name` (a file name, not a path) is an in-progress or abandoned temp file.
    public static func isTemporary(_ name: String) -> Bool {
        name.hasPrefix(temporaryPrefix)
    }

    /// Writes `contents` to `directory/name` atomically and durably.
    /// - Parameters:
    ///   - syncDirectory: fsync the directory after the rename (true for anything a client was
    ///     promised; callers may batch it, e.g. the status file, which is rewritten every second).
    ///   - replacing: whether an existing file of that name is replaced (rename(2)); false
    ///     fails with `EEXIST` instead (renameat2 `RENAME_NOREPLACE`), leaving it untouched.
    ///   - crashPoint: names the gaps for `CrashPoint` (`NAME.before-rename`: the temp file is
    ///     complete and synced, the final name absent or old; `NAME.before-directory-sync`:
    ///     the final name is in place but its directory entry may not survive a power cut).
    /// - Throws: `SystemError` from open, write, fsync or rename; the temp file is removed.
    public static func write(
        _ contents: some Collection<UInt8>,
        to name: String,
        in directory: String,
        syncDirectory: Bool = true,
        replacing: Bool = true,
        mode: mode_t = 0o640,
        crashPoint: String? = nil
    ) throws {
        let final = directory + "/" + name
        // Unique to this write: two processes (or threads) writing the same name at once must
        // not truncate and rename each other's temp file.
        let temp =
            directory + "/" + temporaryPrefix + name + "." + String(getpid()) + "-"
            + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let fd = try Syscall.open(temp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        var open = true
        do {
            let bytes = Array(contents)
            try bytes.withUnsafeBytes { buffer in
                try Syscall.writeAll(fd, buffer, path: temp)
            }
            try Syscall.fsync(fd, path: temp)
            open = false  // close(2) releases the descriptor even when it fails
            try Syscall.close(fd, path: temp)
        } catch {
            if open { _ = Glibc.close(fd) }
            _ = Glibc.unlink(temp)
            throw error
        }
        if let crashPoint { CrashPoint.reach(crashPoint + ".before-rename") }
        do {
            if replacing { try Syscall.rename(temp, final) } else { try Syscall.renameNoReplace(temp, final) }
        } catch {
            _ = Glibc.unlink(temp)
            throw error
        }
        if let crashPoint { CrashPoint.reach(crashPoint + ".before-directory-sync") }
        if syncDirectory { try Syscall.fsyncDirectory(directory) }
    }
}
