#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, on which path, and the `errno` it set.
///
/// Thrown by every wrapper in `Syscall`. `description` reads like
/// `rename(/data/queue/a.tmp -> /data/queue/a.json): No space left on device (errno 28)`.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The system call's name, e.g. `"fsync"`.
    public let call: String
    /// The path (or paths) the call acted on, for the message.
    public let path: String
    /// The `errno` value the call left.
    public let errno: Int32

    public init(call: String, path: String, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(call)(\(path)): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
