import CLinux
import Delivery
import Foundation
import Logging
import MailModel
import Platform
import Status
import Synchronization

/// mailworkerd's control socket (`DATA_DIR/status/mailworkerd.sock`, mode 0660): it carries
/// out `POST /process-batch` for mailfcgi, so that only this daemon holds the relay's
/// settings. One request per connection: a line `process-batch`, answered with an HTTP
/// status line (`200`, or `503` when the queue cannot be processed) and a JSON body (a
/// `ProcessBatchAnswer`, or `{"detail": ...}`), then the connection is closed. Requests are served one at a
/// time, each on its own SMTP connection (closed with QUIT afterwards), whether or not
/// `AUTO_PROCESSING_ENABLED` is set; a claim is exclusive, so this never races the workers.
final class ControlServer: Sendable {
    private let path: String
    private let listener: Int32
    private let makeAgent: @Sendable () throws -> DeliveryAgent
    private let pause: DeliveryPause
    /// Called when an attempt here ended a pause of the pool (to wake its workers).
    private let resumed: @Sendable () -> Void
    private let logger: Logger
    private let thread = Mutex<BackgroundThread?>(nil)
    private let stopping = Atomic<Bool>(false)
    /// The queue file the request being served holds claimed.
    private let serving = Mutex<String?>(nil)

    /// Seconds a client may take to send its request line.
    static let requestTimeout = 5.0

    /// Listens on `path`.
    /// - Throws: `UnixSocket.InUse` when another mailworkerd answers there, `SystemError`.
    init(
        path: String,
        pause: DeliveryPause,
        logger: Logger,
        resumed: @escaping @Sendable () -> Void,
        makeAgent: @escaping @Sendable () throws -> DeliveryAgent
    ) throws {
        self.path = path
        self.pause = pause
        self.resumed = resumed
        self.logger = logger
        self.makeAgent = makeAgent
        listener = try UnixSocket.listen(path, backlog: 64)
    }

    func start() {
        let started = BackgroundThread(name: "control") { [self] in
            while !stopping.load(ordering: .relaxed) {
                let client = clinux_accept_blocking(listener)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    if !stopping.load(ordering: .relaxed) {
                        logger.error(
                            "control socket: accept failed",
                            metadata: ["error": "\(String(cString: strerror(errno)))"]
                        )
                        usleep(100_000)
                    }
                    continue
                }
                serve(client)
                close(client)
            }
        }
        thread.withLock { $0 = started }
    }

    /// Stops accepting at once (the first step of mailworkerd's stop, so that no new claim
    /// is made while the workers finish) and removes the socket file.
    func stopAccepting() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        shutdown(listener, Int32(SHUT_RDWR))  // wakes accept(2) with EINVAL
        try? Syscall.unlink(path)
    }

    /// Waits up to `timeout` seconds for a request being served to finish.
    /// - Returns: the queue file it still holds claimed if it did not (the caller puts it back).
    func finish(timeout: Double) async -> String? {
        stopAccepting()
        if await thread.withLock({ $0 })?.join(timeout: timeout) == false {
            logger.warning("a process-batch request was still being served at SHUTDOWN_TIMEOUT")
            return serving.withLock { $0 }
        }
        close(listener)
        return nil
    }

    private func serve(_ client: Int32) {
        UnixSocket.setTimeouts(client, seconds: Self.requestTimeout)
        let line = (try? UnixSocket.receiveLine(client, limit: 256, within: Self.requestTimeout, path: path)) ?? ""
        // A request that waited in the backlog while its client gave up (a 504) is dropped.
        if UnixSocket.peerClosed(client) {
            logger.notice("control socket: the client left before its request was served; not carried out")
            return
        }
        let (status, body): (Int, Data?)
        if line.trimmingCharacters(in: .whitespaces) != ProcessBatchAnswer.request {
            (status, body) = (400, try? JSONEncoder().encode(["detail": "unknown control request"]))
        } else {
            do {
                (status, body) = (200, try QueueCoding.encoder().encode(try processBatch()))
            } catch {
                logger.error("process-batch failed", metadata: ["error": "\(error)"])
                (status, body) = (
                    503, try? JSONEncoder().encode(["detail": "mailworkerd cannot process the queue: \(error)"])
                )
            }
        }
        do {
            try UnixSocket.sendAll(client, Array("\(status)\n".utf8) + [UInt8](body ?? Data()), path: path)
        } catch {
            logger.warning("control socket: the answer could not be sent", metadata: ["error": "\(error)"])
        }
    }

    private func processBatch() throws -> ProcessBatchAnswer {
        let agent = try makeAgent()
        defer { agent.transport.close() }
        defer { serving.withLock { $0 = nil } }
        guard let attempt = try agent.processNext(onClaim: { name in serving.withLock { $0 = name } }) else {
            return .idle(at: Date())
        }
        if pause.note(attempt) == .resumed { resumed() }
        return ProcessBatchAnswer(attempt, at: Date())
    }
}
