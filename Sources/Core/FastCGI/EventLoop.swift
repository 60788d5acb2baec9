import CLinux
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// The event thread's view of epoll(7): the listening socket, a wake-up pipe, and the
/// accepted connections, level-triggered. Used by one thread only.
final class EventLoop {
    /// What `wait` reports.
    enum Event {
        /// The listening socket has a connection to accept.
        case accept
        /// The wake-up pipe was written (a worker finished, or `stop()`).
        case wake
        /// A connection is ready: input, its end, a hang-up or an error (`readable`: a read
        /// tells which), or room to write.
        case connection(Int32, readable: Bool)
    }

    private let epoll: Int32
    private var listener: Int32
    private let wakeFD: Int32
    private var listening = false
    /// What each watched connection is watched for; absent when not watched at all.
    private var interest: [Int32: UInt32] = [:]
    private var events = [epoll_event](repeating: epoll_event(), count: 64)

    /// - Throws: `SystemError` when epoll_create1(2) or epoll_ctl(2) fails.
    init(listener: Int32, wake: Int32) throws {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SystemError(call: "epoll_create1", path: "", errno: errno) }
        self.listener = listener
        self.wakeFD = wake
        guard control(EPOLL_CTL_ADD, wake, EPOLLIN.rawValue) else {
            throw SystemError(call: "epoll_ctl", path: "", errno: errno)
        }
        setListening(true)
    }

    @discardableResult
    private func control(_ op: Int32, _ fd: Int32, _ events: UInt32) -> Bool {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        return epoll_ctl(epoll, op, fd, &event) == 0
    }

    /// Starts or stops watching the listening socket: stopped while the connection limit is
    /// reached or descriptors run out, so the backlog waits instead of the loop spinning.
    func setListening(_ on: Bool) {
        guard listener >= 0, on != listening else { return }
        control(on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listener, EPOLLIN.rawValue)
        listening = on
    }

    /// Watches `fd` for input, output, both or neither. A connection watched for neither is
    /// removed from epoll: a hang-up would otherwise be reported again and again.
    func watch(_ fd: Int32, input: Bool, output: Bool) {
        let wanted = (input ? EPOLLIN.rawValue : 0) | (output ? EPOLLOUT.rawValue : 0)
        let current = interest[fd] ?? 0
        guard wanted != current else { return }
        if wanted == 0 {
            control(EPOLL_CTL_DEL, fd, 0)
            interest[fd] = nil
        } else {
            control(current == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, wanted)
            interest[fd] = wanted
        }
    }

    /// Stops watching `fd` and closes it.
    func close(_ fd: Int32) {
        if interest.removeValue(forKey: fd) != nil { control(EPOLL_CTL_DEL, fd, 0) }
        Glibc.close(fd)
    }

    /// Accepts one connection, non-blocking and not yet watched. Non-blocking matters: a
    /// descriptor number closed and reused within one batch of events must never make the
    /// loop wait in read(2) on a silent client. Returns nil when none was waiting; `errno`
    /// then tells why (EMFILE, ENFILE: out of descriptors).
    func accept() -> Int32? {
        let fd = clinux_accept_nonblocking(listener)
        return fd >= 0 ? fd : nil
    }

    /// Accepts every connection the kernel has completed and queued on the listener, without
    /// waiting for more (the listener is made non-blocking first), at most `limit`.
    func acceptPending(limit: Int) -> [Int32] {
        guard listener >= 0 else { return [] }
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        var accepted: [Int32] = []
        while accepted.count < limit, let fd = accept() { accepted.append(fd) }
        return accepted
    }

    /// Closes the listening socket: new connections are refused from now on.
    func closeListener() {
        guard listener >= 0 else { return }
        setListening(false)
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
            let input = EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue
            return .connection(fd, readable: event.events & input != 0)
        }
    }

    /// Closes the listening socket and the epoll descriptor (connections are closed one by one).
    func closeAll() {
        closeListener()
        Glibc.close(epoll)
    }
}
