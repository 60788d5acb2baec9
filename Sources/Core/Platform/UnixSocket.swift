#if canImport(Glibc)
import Glibc
#endif

/// Unix stream sockets (unix(7)): the responder's listening socket for nginx, and
/// mailworkerd's control socket, which mailfcgi connects to.
public enum UnixSocket {
    /// Another process answers on the socket path: it is not replaced.
    public struct InUse: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "another process is already listening on \(path)" }
    }

    /// Binds and listens on `path` with mode 0660 (nginx's workers reach it through the group).
    /// A socket file left by a crashed run is replaced; one that a live process answers on is not.
    /// - Returns: the listening descriptor.
    /// - Throws: `InUse`, or `SystemError` for socket(2), bind(2), listen(2) (`ENAMETOOLONG`
    ///   when the path does not fit a socket address, 107 bytes).
    public static func listen(_ path: String, backlog: Int32) throws -> Int32 {
        guard var address = address(path) else {
            throw SystemError(call: "bind", path: path, errno: ENAMETOOLONG)
        }
        if connects(&address) { throw InUse(path: path) }
        try? Syscall.unlink(path)
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
        do {
            try Syscall.setMode(path, 0o660)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Connects to the socket at `path`; the descriptor is blocking and close-on-exec.
    /// - Throws: `SystemError` for socket(2) or connect(2) (`ENOENT` or `ECONNREFUSED`: no
    ///   process listens there).
    public static func connect(_ path: String) throws(SystemError) -> Int32 {
        guard var address = address(path) else { throw SystemError(call: "connect", path: path, errno: ENAMETOOLONG) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", path: path, errno: errno) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw SystemError(call: "connect", path: path, errno: code)
        }
        return fd
    }

    /// Sets SO_RCVTIMEO and SO_SNDTIMEO on `fd`: a read or write waiting longer fails with EAGAIN.
    public static func setTimeouts(_ fd: Int32, seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            _ = setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    /// - Throws: `SystemError` from send(2) (MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE).
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "send", path: path, errno: errno)
            }
            offset += n
        }
    }

    /// Reads until end of file or `limit` bytes.
    /// - Throws: `SystemError` from recv(2) (`EAGAIN` after the receive timeout).
    public static func receiveAll(_ fd: Int32, limit: Int, path: String) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while result.count < limit {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "recv", path: path, errno: errno)
            }
            if n == 0 { break }
            result += buffer[0..<n]
        }
        return result
    }

    /// Reads up to and without the first line feed (at most `limit` bytes), or to end of
    /// file, within `seconds` in all (a peer that trickles bytes cannot hold the reader).
    /// - Throws: `SystemError` from poll(2) or recv(2); `ETIMEDOUT` when time ran out.
    public static func receiveLine(
        _ fd: Int32,
        limit: Int,
        within seconds: Double,
        path: String
    ) throws(SystemError)
        -> String
    {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < limit {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw SystemError(call: "recv", path: path, errno: ETIMEDOUT) }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(
                &poller,
                1,
                Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            )
            if ready < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "poll", path: path, errno: errno)
            }
            if ready == 0 { continue }
            let n = recv(fd, &byte, 1, 0)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "recv", path: path, errno: errno)
            }
            if n == 0 || byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        return String(decoding: line, as: UTF8.self)
    }

    /// Whether the peer has closed its end: a peek (recv(2) `MSG_PEEK | MSG_DONTWAIT`) finds
    /// end of file or an error rather than nothing yet. For a client that gave up waiting,
    /// whose request is then not carried out.
    public static func peerClosed(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
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
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
