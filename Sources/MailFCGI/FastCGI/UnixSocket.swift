import Core

#if canImport(Glibc)
import Glibc
#endif

/// The responder's listening unix socket (unix(7)).
enum UnixSocket {
    /// Binds and listens on `path` with mode 0660 (nginx's workers reach it through the group).
    /// A socket file left by a crashed run is replaced; one that a live process answers on is not.
    /// - Returns: the listening descriptor.
    /// - Throws: `ServerError.socketInUse`, or `SystemError` for socket(2), bind(2), listen(2).
    static func listen(_ path: String, backlog: Int32) throws -> Int32 {
        guard var address = address(path) else {
            throw SystemError(call: "bind", path: path, errno: ENAMETOOLONG)
        }
        if connects(&address) { throw ServerError.socketInUse(path) }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", path: path, errno: errno) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw SystemError(call: bound == 0 ? "listen" : "bind", path: path, errno: code)
        }
        chmod(path, 0o660)
        return fd
    }

    private static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    /// Whether something listens at `address` (connect(2) succeeds).
    private static func connects(_ address: inout sockaddr_un) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
