import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Notices files arriving in the queue directory, from this process or any other, with
/// inotify(7): every finished queue file arrives by rename(2), which inotify reports as
/// `IN_MOVED_TO`. Calls `onChange` on its own thread for each batch of events.
public final class QueueWatcher: Sendable {
    private let fd: Int32
    private let directory: String
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)
    private let onChange: @Sendable () -> Void

    /// - Throws: `SystemError` from inotify_init1(2) or inotify_add_watch(2).
    public init(directory: String, onChange: @escaping @Sendable () -> Void) throws {
        self.directory = directory
        self.onChange = onChange
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if fd == -1 { throw SystemError(call: "inotify_init1", path: directory, errno: errno) }
        if inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO)) == -1 {
            let code = errno
            Glibc.close(fd)
            throw SystemError(call: "inotify_add_watch", path: directory, errno: code)
        }
    }

    deinit {
        Glibc.close(fd)
    }

    /// Starts the watching thread.
    public func start() {
        let started = Thread.spawn { [self] in loop() }
        thread.withLock { $0 = started }
    }

    /// Stops the thread within about 200 ms and waits for it.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        if let running = thread.withLock({ $0 }) { pthread_join(running, nil) }
    }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !stopping.load(ordering: .relaxed) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            var changed = false
            while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 { changed = true }
            if changed { onChange() }
        }
    }
}
