import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Named places between two system calls of a state change, where the e2e suite kills the
/// process with a real SIGKILL to prove that the next start resolves what is left.
///
/// Debug builds only: `MAIL_CRASH_AT=NAME` kills the process the first time it reaches
/// `NAME`, `MAIL_CRASH_AT=NAME:N` the N-th time. Release builds compile every call to
/// nothing, so production binaries carry no way to be told to die. The names are listed
/// beside each gap's comment in `FileQueue` and `AtomicFile`.
public enum CrashPoint {
    #if DEBUG
    private struct Target: Sendable {
        let name: String
        let count: Int
    }

    private static let target: Target? = {
        guard let raw = getenv("MAIL_CRASH_AT").map({ String(cString: $0) }), !raw.isEmpty else { return nil }
        let parts = raw.split(separator: ":", maxSplits: 1)
        return Target(name: String(parts[0]), count: parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()

    private static let hits = Mutex(0)

    /// Kills the process with SIGKILL if `MAIL_CRASH_AT` names this point (and count).
    public static func reach(_ name: String) {
        guard let target, target.name == name else { return }
        let count = hits.withLock { hits in
            hits += 1
            return hits
        }
        if count == target.count { raise(SIGKILL) }
    }
    #else
    @inline(__always)
    public static func reach(_ name: String) {}
    #endif
}
