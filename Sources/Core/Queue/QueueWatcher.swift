import Platform
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Notices files arriving in the queue directory, from this process or any other, with
/// inotify(7): every finished queue file arrives by rename(2), which inotify reports as
/// `IN_MOVED_TO` (`IN_CLOSE_WRITE` covers a file an operator copies in). Calls `onChange`
/// on its own thread for each batch of events, with the names that arrived, or with
/// `overflowed` true when the kernel dropped events (`IN_Q_OVERFLOW`) and the directory
/// must be re-read.
public final class QueueWatcher: Sendable {
    private let fd: Int32
    private let directory: String
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<BackgroundThread?>(nil)
    private let onChange: @Sendable (_ changes: [Change], _ overflowed: Bool) -> Void

    /// A name that appeared in the folder (renamed in, or written and closed) or left it
    /// (renamed away: claimed or canceled; or deleted), in the order the kernel saw them.
    public struct Change: Equatable, Sendable {
        public let name: String
        public let departed: Bool
    }

    /// - Throws: `SystemError` from inotify_init1(2) or inotify_add_watch(2).
    public init(
        directory: String,
        onChange: @escaping @Sendable (_ changes: [Change], _ overflowed: Bool) -> Void
    ) throws {
        self.directory = directory
        self.onChange = onChange
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if fd == -1 { throw SystemError(call: "inotify_init1", path: directory, errno: errno) }
        let mask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_DELETE
        if inotify_add_watch(fd, directory, UInt32(mask)) == -1 {
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
        let started = BackgroundThread(name: "queue-watcher") { [self] in loop() }
        thread.withLock { $0 = started }
    }

    /// Stops the thread within about 200 ms and waits for it.
    public func stop() async {
        stopping.store(true, ordering: .relaxed)
        await thread.withLock({ $0 })?.join()
    }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !stopping.load(ordering: .relaxed) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            var changes: [Change] = []
            var overflowed = false
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                overflowed = Self.parse(buffer[0..<count], into: &changes) || overflowed
            }
            if !changes.isEmpty || overflowed { onChange(changes, overflowed) }
        }
    }

    /// Appends the changes in a buffer of `struct inotify_event` records (inotify(7));
    /// returns whether one of them reported an overflow.
    static func parse(_ bytes: ArraySlice<UInt8>, into changes: inout [Change]) -> Bool {
        var overflowed = false
        var offset = bytes.startIndex
        let header = 16  // int wd; uint32_t mask, cookie, len;
        while offset + header <= bytes.endIndex {
            func word(_ at: Int) -> UInt32 {
                (0..<4).reduce(0) { $0 | UInt32(bytes[offset + at + $1]) << (8 * UInt32($1)) }
            }
            let mask = word(4)
            let length = Int(word(12))
            if mask & UInt32(IN_Q_OVERFLOW) != 0 { overflowed = true }
            let nameBytes = bytes[(offset + header)..<min(offset + header + length, bytes.endIndex)]
            if let end = nameBytes.firstIndex(of: 0) ?? (nameBytes.isEmpty ? nil : nameBytes.endIndex),
                end > nameBytes.startIndex
            {
                let name = String(decoding: nameBytes[nameBytes.startIndex..<end], as: UTF8.self)
                changes.append(Change(name: name, departed: mask & UInt32(IN_MOVED_FROM | IN_DELETE) != 0))
            }
            offset += header + length
        }
        return overflowed
    }
}
