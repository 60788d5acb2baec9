import Core
import Foundation
import Logging
import Synchronization

/// A FastCGI 1.0 Responder (§6.2) on a unix socket.
///
/// One event thread accepts connections and reads records from all of them with epoll(7);
/// when a request is complete it goes to a pool of `threads` workers, which run `respond` and
/// write the answer. A connection kept open by the web server (FCGI_KEEP_CONN, nginx's
/// `fastcgi_keep_conn on`) therefore holds no thread while it is idle, and requests from
/// several connections, or multiplexed on one, share the workers.
///
/// `stop()` closes the listening socket, lets every request already received or arriving on
/// an open connection finish (closing each connection after its last answer), and returns
/// when all are done or after `drainTimeout` seconds.
final class FastCGIServer: Sendable {
    private let socketPath: String
    private let threadCount: Int
    private let limits: FastCGIConnection.Limits
    private let drainTimeout: Double
    private let respond: @Sendable (Request) -> Response
    private let logger: Logger
    private let jobs = JobQueue()
    private let draining = Atomic<Bool>(false)
    /// The pipe whose write end wakes the event thread for `stop()`.
    private let wake = Mutex<(read: Int32, write: Int32)>((-1, -1))
    private let threads = Mutex<(events: pthread_t?, workers: [pthread_t])>((nil, []))

    init(socketPath: String, threads: Int, maxBodyBytes: Int, drainTimeout: Double = 30, logger: Logger,
         respond: @escaping @Sendable (Request) -> Response) {
        self.socketPath = socketPath
        self.threadCount = threads
        self.limits = FastCGIConnection.Limits(body: maxBodyBytes)
        self.drainTimeout = drainTimeout
        self.logger = logger
        self.respond = respond
    }

    /// Binds the socket (mode 0660: nginx's workers reach it through the group) and starts
    /// the threads.
    /// - Throws: `ServerError.socketInUse` when another process answers on the socket,
    ///   `SystemError` when it cannot be created.
    func start() throws {
        let directory = (socketPath as NSString).deletingLastPathComponent
        if !directory.isEmpty { try Syscall.makeDirectories(directory) }
        let listener = try UnixSocket.listen(socketPath, backlog: 1024)
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw SystemError(call: "pipe", path: socketPath, errno: errno) }
        for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        wake.withLock { $0 = (pipeEnds[0], pipeEnds[1]) }
        let loop = try EventLoop(listener: listener, wake: pipeEnds[0])
        let workers = (0..<threadCount).map { _ in Thread.spawn { [self] in work() } }
        let events = Thread.spawn { [self] in run(loop) }
        threads.withLock { $0 = (events, workers) }
        logger.info("listening", metadata: ["socket": "\(socketPath)", "threads": "\(threadCount)"])
    }

    /// Stops accepting, lets requests in flight finish, joins the threads, removes the socket.
    func stop() {
        let ends = wake.withLock { $0 }
        guard ends.write >= 0, !draining.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = Glibc.write(ends.write, [UInt8(1)], 1)
        let (events, workers) = threads.withLock { $0 }
        if let events { pthread_join(events, nil) }
        for _ in workers { jobs.push(nil) }
        for worker in workers { pthread_join(worker, nil) }
        close(ends.read)
        close(ends.write)
    }

    private func work() {
        while let job = jobs.pop() {
            let bytes: [UInt8]
            switch job.work {
            case .request(let request): bytes = Self.records(job.requestID, respond(request))
            case .response(let response): bytes = Self.records(job.requestID, response)
            case .records(let records): bytes = records
            }
            job.connection.send(bytes)
            job.connection.finished(keepConnection: job.keepConnection, draining: draining.load(ordering: .acquiring))
        }
    }

    /// A response as FCGI_STDOUT records, the empty one ending the stream, and FCGI_END_REQUEST.
    private static func records(_ id: UInt16, _ response: Response) -> [UInt8] {
        var stdout = Array(response.head.utf8)
        stdout += response.body
        var out: [UInt8] = []
        out.reserveCapacity(stdout.count + 64)
        FastCGI.appendStream(.stdout, id, stdout, to: &out)
        FastCGI.appendEndRequest(id, .requestComplete, to: &out)
        return out
    }

    // MARK: Event thread

    private func run(_ loop: EventLoop) {
        var connections: [Int32: FastCGIConnection] = [:]
        var deadline: Double?
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
        defer { chunk.deallocate() }

        func drop(_ connection: FastCGIConnection) {
            loop.remove(connection.fd)
            connections[connection.fd] = nil
            _ = connection.detach()
        }

        while true {
            if draining.load(ordering: .acquiring) {
                if deadline == nil {
                    deadline = Date().timeIntervalSince1970 + drainTimeout
                    loop.closeListener()
                    unlink(socketPath)
                }
                for connection in connections.values where connection.isIdle { drop(connection) }
                if connections.isEmpty { break }
                if Date().timeIntervalSince1970 > deadline! {
                    logger.warning("stopping with connections still open", metadata: ["connections": "\(connections.count)"])
                    connections.values.forEach(drop)
                    break
                }
            }
            for event in loop.wait(timeoutMilliseconds: deadline == nil ? -1 : 100) {
                switch event {
                case .wake:
                    continue
                case .accept:
                    guard let fd = loop.accept() else { continue }
                    connections[fd] = FastCGIConnection(fd: fd, limits: limits)
                case .readable(let fd):
                    guard let connection = connections[fd] else { continue }
                    let n = read(fd, chunk.baseAddress, chunk.count)
                    if n < 0, errno == EINTR || errno == EAGAIN { continue }
                    guard n > 0 else {
                        drop(connection)  // end of stream (the peer, or our shutdown after the last answer)
                        continue
                    }
                    do {
                        let ready = try connection.receive(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                        connection.dispatched(ready.count)
                        ready.forEach(jobs.push)
                    } catch {
                        logger.warning("closing a FastCGI connection", metadata: ["reason": "\(error)"])
                        drop(connection)
                    }
                }
            }
        }
        loop.closeAll()
    }
}

/// Why the responder cannot start.
enum ServerError: Error, CustomStringConvertible {
    /// Another process answers on the socket; taking it over would cut that one off.
    case socketInUse(String)

    var description: String {
        switch self {
        case .socketInUse(let path): "another process is already listening on \(path) (is mailfcgi running?)"
        }
    }
}
