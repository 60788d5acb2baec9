import Foundation
import Logging
import Platform
import Synchronization

/// A FastCGI 1.0 Responder (§6.2) on a unix socket.
///
/// One event thread does all the socket work with epoll(7): it accepts, reads and parses
/// records, writes answers without blocking, and closes. A complete request goes to one of
/// `threads` workers, which run `respond` and hand the answer back through a wake-up pipe.
/// So a connection kept open by the web server (FCGI_KEEP_CONN, nginx's `fastcgi_keep_conn
/// on`) holds no thread while idle, and a client that stops reading holds none either.
///
/// A connection silent for `idleTimeout` seconds with nothing in flight is closed, so that
/// silent peers cannot hold every connection slot.
///
/// `stop()` closes the listening socket, refuses new requests (FCGI_OVERLOADED), lets those
/// already begun finish and be written, closing each connection after its last answer, and
/// returns when all are done or after `drainTimeout` seconds.
public final class FastCGIServer: Sendable {
    private let socketPath: String
    private let threadCount: Int
    private let limits: FastCGIConnection.Limits
    private let drainTimeout: Double
    private let idleTimeout: Double
    private let respond: @Sendable (Request) -> Response
    private let refusal: @Sendable (Int, String) -> Response
    private let logger: Logger
    private let jobs = JobQueue<FastCGIConnection.Job>()
    private let completions = Mutex<[FastCGIConnection.Completion]>([])
    private let stopping = Atomic<Bool>(false)
    /// The pipe whose write end wakes the event thread.
    private let wake = Mutex<(read: Int32, write: Int32)>((-1, -1))
    private let threads = Mutex<(events: BackgroundThread?, workers: [BackgroundThread])>((nil, []))

    public init(
        socketPath: String,
        threads: Int,
        maxBodyBytes: Int,
        drainTimeout: Double = 30,
        idleTimeout: Double = 300,
        logger: Logger,
        refusal: @escaping @Sendable (_ status: Int, _ reason: String) -> Response = Response.plainText,
        respond: @escaping @Sendable (Request) -> Response
    ) {
        self.refusal = refusal
        self.socketPath = socketPath
        self.threadCount = threads
        var limits = FastCGIConnection.Limits(body: maxBodyBytes)
        limits.connections = Self.connectionLimit(reserving: threads + 64)
        self.limits = limits
        self.drainTimeout = drainTimeout
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.respond = respond
    }

    /// At most 1,024 connections, and fewer when the descriptor limit (RLIMIT_NOFILE) would
    /// not leave `reserving` for the workers' queue files and logs.
    private static func connectionLimit(reserving: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return max(1, min(1024, Int(clamping: limit.rlim_cur) - reserving))
    }

    /// Binds the socket (mode 0660: nginx's workers reach it through the group) and starts
    /// the threads.
    /// - Throws: `ServerError.socketInUse` when another process answers on the socket,
    ///   `SystemError` when it cannot be created.
    public func start() throws {
        let directory = (socketPath as NSString).deletingLastPathComponent
        if !directory.isEmpty { try Syscall.makeDirectories(directory) }
        let listener: Int32
        do {
            listener = try UnixSocket.listen(socketPath, backlog: 1024)
        } catch let error as UnixSocket.InUse {
            throw ServerError.socketInUse(error.path)
        }
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw SystemError(call: "pipe", path: socketPath, errno: errno) }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(ends[0], F_SETFL, O_NONBLOCK)  // drained until empty on each wake-up
        wake.withLock { $0 = (ends[0], ends[1]) }
        let loop = try EventLoop(listener: listener, wake: ends[0])
        let workers = (1...threadCount).map { n in BackgroundThread(name: "fcgi-worker-\(n)") { [self] in work() } }
        let events = BackgroundThread(name: "fcgi-events") { [self] in run(loop) }
        threads.withLock { $0 = (events, workers) }
        logger.info(
            "listening",
            metadata: [
                "socket": "\(socketPath)", "threads": "\(threadCount)",
                "max_connections": "\(limits.connections)",
            ]
        )
    }

    /// Stops accepting, lets requests begun finish, joins the threads, removes the socket.
    public func stop() async {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let ends = wake.withLock { $0 }
        guard ends.write >= 0 else { return }
        wakeEventThread()
        let (events, workers) = threads.withLock { $0 }
        await events?.join()
        jobs.stop(workers: workers.count)
        for worker in workers { await worker.join() }
        close(ends.read)
        close(ends.write)
    }

    private func wakeEventThread() {
        _ = Glibc.write(wake.withLock { $0.write }, [UInt8(1)], 1)
    }

    private func work() {
        while let job = jobs.pop() {
            let records = FastCGIConnection.records(job.requestID, respond(job.request))
            let wasEmpty = completions.withLock { queue in
                queue.append(.init(connection: job.connection, requestID: job.requestID, records: records))
                return queue.count == 1
            }
            if wasEmpty { wakeEventThread() }  // one wake-up for answers finished together
        }
    }

    // MARK: Event thread

    private func run(_ loop: EventLoop) {
        var connections: [Int32: FastCGIConnection] = [:]
        var deadline: Double?
        var acceptPausedUntil: Double?
        var lastDescriptorWarning = -Double.infinity
        var nextIdleSweep = Date().timeIntervalSince1970 + idleTimeout / 4
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
        defer { chunk.deallocate() }
        let drainPipe = [UInt8](repeating: 0, count: 256)
        let now = { Date().timeIntervalSince1970 }

        /// Reads what the peer sent (one read; level-triggered epoll reports the rest again)
        /// and hands the requests it completes to the workers.
        func readFrom(_ connection: FastCGIConnection) {
            let n = read(connection.fd, chunk.baseAddress, chunk.count)
            if n > 0 {
                let (ready, error) = connection.receive(UnsafeRawBufferPointer(rebasing: chunk[0..<n]), now: now())
                if let error {
                    logger.warning("FastCGI protocol error; closing the connection", metadata: ["reason": "\(error)"])
                }
                ready.forEach(jobs.push)
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                connection.endOfInput()
            }
        }

        /// Writes what it can, then closes the connection or watches it for what it waits for.
        func settle(_ connection: FastCGIConnection) {
            connection.flush()
            if connection.isDone {
                loop.close(connection.fd)
                connections[connection.fd] = nil
                if connections.count == limits.connections - 1, acceptPausedUntil == nil, deadline == nil {
                    loop.setListening(true)
                }
            } else {
                loop.watch(connection.fd, input: connection.wantsInput, output: connection.wantsOutput)
            }
        }

        while true {
            if stopping.load(ordering: .acquiring), deadline == nil {
                deadline = now() + drainTimeout
                // Connections the kernel completed that this thread had not accepted yet are
                // the peer's as much as the others (nginx may have sent a request on one):
                // taken in, so that what was sent before the stop is answered, not reset.
                for fd in loop.acceptPending(limit: max(0, limits.connections - connections.count)) {
                    connections[fd] = FastCGIConnection(fd: fd, limits: limits, now: now(), refusal: refusal)
                }
                loop.closeListener()
                try? Syscall.unlink(socketPath)
                for connection in Array(connections.values) {
                    // What a peer sent before the stop is read first: a request already on
                    // its way is finished, not cut off.
                    if connection.wantsInput { readFrom(connection) }
                    connection.drain()
                    settle(connection)
                }
            }
            if let deadline {
                if connections.isEmpty { break }
                if now() > deadline {
                    logger.warning(
                        "stopping with connections still open",
                        metadata: ["connections": "\(connections.count)"]
                    )
                    for fd in connections.keys { loop.close(fd) }
                    break
                }
            }
            if now() >= nextIdleSweep {
                // A peer silent this long with nothing in flight holds a slot for nothing.
                let silentSince = now() - idleTimeout
                for connection in connections.values where connection.isSilent(since: silentSince) {
                    loop.close(connection.fd)
                    connections[connection.fd] = nil
                }
                if deadline == nil, acceptPausedUntil == nil {
                    loop.setListening(connections.count < limits.connections)
                }
                nextIdleSweep = now() + idleTimeout / 4
            }
            if let until = acceptPausedUntil, now() >= until, deadline == nil {
                acceptPausedUntil = nil
                loop.setListening(connections.count < limits.connections)
            }
            let timeout: Int32 =
                deadline != nil || acceptPausedUntil != nil
                ? 100 : Int32(clamping: Int(max(0, nextIdleSweep - now()) * 1000) + 1)
            for event in loop.wait(timeoutMilliseconds: timeout) {
                switch event {
                case .wake:
                    var drained = drainPipe
                    while read(wake.withLock { $0.read }, &drained, drained.count) > 0 {}
                    for completion in completions.withLock({ queue in
                        defer { queue = [] }
                        return queue
                    }) {
                        // A connection closed meanwhile (its peer gone) is no longer in the table.
                        guard connections[completion.connection.fd] === completion.connection else { continue }
                        completion.connection.complete(completion, now: now())
                        settle(completion.connection)
                    }
                case .accept:
                    guard let fd = loop.accept() else {
                        if errno == EMFILE || errno == ENFILE {
                            // Out of descriptors: the backlog waits a moment instead of the
                            // loop spinning on a listener that stays readable.
                            if now() - lastDescriptorWarning > 60 {
                                lastDescriptorWarning = now()
                                logger.warning(
                                    "out of file descriptors; accepting paused",
                                    metadata: ["connections": "\(connections.count)"]
                                )
                            }
                            loop.setListening(false)
                            acceptPausedUntil = now() + 0.1
                        }
                        continue
                    }
                    let connection = FastCGIConnection(fd: fd, limits: limits, now: now(), refusal: refusal)
                    connections[fd] = connection
                    settle(connection)
                    if connections.count >= limits.connections { loop.setListening(false) }
                case .connection(let fd, let readable):
                    guard let connection = connections[fd] else { continue }
                    if readable, connection.wantsInput { readFrom(connection) }
                    settle(connection)  // writes what waits, if the event was room to write
                }
            }
        }
        loop.closeAll()
    }
}

/// Why the responder cannot start.
public enum ServerError: Error, CustomStringConvertible {
    /// Another process answers on the socket; taking it over would cut that one off.
    case socketInUse(String)

    public var description: String {
        switch self {
        case .socketInUse(let path): "another process is already listening on \(path) (is mailfcgi running?)"
        }
    }
}
