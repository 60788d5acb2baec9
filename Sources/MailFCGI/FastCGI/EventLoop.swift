import CLinux
import Core
#if canImport(Glibc)
import Glibc
#endif

/// The event thread's view of epoll(7): the listening socket, a wake-up pipe, and the
/// accepted connections, all level-triggered, so a read that leaves bytes behind is reported
/// again. Used by one thread only.
final class EventLoop {
    /// What `wait` reports.
    enum Event {
        /// The listening socket has a connection to accept.
        case accept
        /// The wake-up pipe was written (`FastCGIServer.stop`).
        case wake
        /// A connection has bytes, or its end, to read.
        case readable(Int32)
    }

    private let epoll: Int32
    private var listener: Int32
    private let wakeFD: Int32
    private var events = [epoll_event](repeating: epoll_event(), count: 64)

    /// - Throws: `SystemError` when epoll_create1(2) or epoll_ctl(2) fails.
    init(listener: Int32, wake: Int32) throws {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SystemError(call: "epoll_create1", path: "", errno: errno) }
        self.listener = listener
        self.wakeFD = wake
        try add(listener)
        try add(wake)
    }

    /// Watches `fd` for input (EPOLLIN; hang-ups are reported with it).
    private func add(_ fd: Int32) throws {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = fd
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw SystemError(call: "epoll_ctl", path: "", errno: errno)
        }
    }

    /// Stops watching `fd`; it stays open.
    func remove(_ fd: Int32) {
        epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
    }

    /// Accepts one connection and watches it. Returns nil when none was waiting, or when the
    /// process is out of descriptors (the client is refused; logged by nginx as a 502).
    func accept() -> Int32? {
        let fd = clinux_accept_cloexec(listener)
        guard fd >= 0 else { return nil }
        // Bounds a write to a web server that stopped reading; the answer is then dropped.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        do { try add(fd) } catch {
            Glibc.close(fd)
            return nil
        }
        return fd
    }

    /// Closes the listening socket: new connections are refused from now on.
    func closeListener() {
        guard listener >= 0 else { return }
        remove(listener)
        Glibc.close(listener)
        listener = -1
    }

    /// Blocks in epoll_wait(2) for at most `timeoutMilliseconds` (-1: no limit).
    func wait(timeoutMilliseconds: Int32) -> [Event] {
        let count = events.withUnsafeMutableBufferPointer {
            epoll_wait(epoll, $0.baseAddress, Int32($0.count), timeoutMilliseconds)
        }
        guard count > 0 else { return [] }
        return events[0..<Int(count)].map { event in
            let fd = event.data.fd
            if fd == listener { return .accept }
            if fd == wakeFD { return .wake }
            return .readable(fd)
        }
    }

    /// Closes the listening socket and the epoll descriptor.
    func closeAll() {
        closeListener()
        Glibc.close(epoll)
    }
}
