import CFastCGI
import Core
import Foundation
import Logging
import Synchronization

/// A threaded FastCGI responder (FastCGI 1.0 §6.2, the Responder role) on libfcgi.
///
/// `threads` threads each run libfcgi's accept loop (FCGX_Accept_r) on one shared unix
/// socket; each request is read, answered by `respond`, and finished on the thread that
/// accepted it. `stop()` shuts the listening socket down, which makes every blocked
/// accept(2) fail, so threads exit after the request they are serving.
final class FastCGIServer: Sendable {
    private let socketPath: String
    private let threadCount: Int
    private let maxBodyBytes: Int
    private let respond: @Sendable (Request) -> Response
    private let logger: Logger
    private let listener = Atomic<Int32>(-1)
    private let threads = Mutex<[pthread_t]>([])

    init(socketPath: String, threads: Int, maxBodyBytes: Int, logger: Logger,
         respond: @escaping @Sendable (Request) -> Response) {
        self.socketPath = socketPath
        self.threadCount = threads
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
        self.respond = respond
    }

    /// Binds the socket (mode 0660: nginx's workers reach it through the group) and starts
    /// the threads.
    /// - Throws: `SystemError` when the socket cannot be created.
    func start() throws {
        guard FCGX_Init() == 0 else { throw SystemError(call: "FCGX_Init", path: socketPath, errno: errno) }
        let directory = (socketPath as NSString).deletingLastPathComponent
        if !directory.isEmpty { try Syscall.makeDirectories(directory) }
        if Self.acceptsConnections(socketPath) {
            throw ServerError.socketInUse(socketPath)
        }
        unlink(socketPath)  // a socket left by a crashed run would make bind(2) fail
        let fd = FCGX_OpenSocket(socketPath, 1024)
        guard fd >= 0 else { throw SystemError(call: "FCGX_OpenSocket", path: socketPath, errno: errno) }
        chmod(socketPath, 0o660)
        listener.store(fd, ordering: .relaxed)
        let started = (0..<threadCount).map { _ in Thread.spawn { [self] in serve(fd) } }
        threads.withLock { $0 = started }
        logger.info("listening", metadata: ["socket": "\(socketPath)", "threads": "\(threadCount)"])
    }

    /// Whether something listens on the unix socket at `path` (connect(2) succeeds).
    private static func acceptsConnections(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    /// Stops accepting, lets requests in flight finish, joins the threads, removes the socket.
    func stop() {
        let fd = listener.exchange(-1, ordering: .relaxed)
        guard fd >= 0 else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        for thread in threads.withLock({ $0 }) { pthread_join(thread, nil) }
        close(fd)
        unlink(socketPath)
    }

    private func serve(_ fd: Int32) {
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer { request.deallocate() }
        FCGX_InitRequest(request, fd, 0)
        while listener.load(ordering: .relaxed) >= 0, FCGX_Accept_r(request) >= 0 {
            let response = handle(request)
            write(response, to: request.pointee.out)
            FCGX_Finish_r(request)
        }
        FCGX_Free(request, 1)
    }

    private func handle(_ raw: UnsafeMutablePointer<FCGX_Request>) -> Response {
        let envp = raw.pointee.envp
        func param(_ name: String) -> String? {
            FCGX_GetParam(name, envp).map { String(cString: $0) }
        }
        let length = param("CONTENT_LENGTH").flatMap(Int.init) ?? 0
        // Refused before reading: a client cannot make us buffer more than MAX_BODY_BYTES.
        if length > maxBodyBytes {
            return HTTPError(413, "Request body is larger than \(maxBodyBytes) bytes").response
        }
        var body = [UInt8](repeating: 0, count: length)
        var received = 0
        while received < length {
            let n = body.withUnsafeMutableBytes {
                FCGX_GetStr($0.baseAddress!.assumingMemoryBound(to: CChar.self) + received,
                            Int32(length - received), raw.pointee.in)
            }
            if n <= 0 { break }
            received += Int(n)
        }
        if received < length {
            return HTTPError(400, "Request body ended after \(received) of \(length) bytes").response
        }
        let request = Request(
            method: param("REQUEST_METHOD") ?? "GET",
            path: param("DOCUMENT_URI") ?? param("SCRIPT_NAME") ?? "/",
            query: param("QUERY_STRING") ?? "",
            contentType: param("CONTENT_TYPE").flatMap { $0.isEmpty ? nil : $0 },
            contentEncoding: param("HTTP_CONTENT_ENCODING"),
            remoteUser: param("REMOTE_USER").flatMap { $0.isEmpty ? nil : $0 },
            body: body)
        return respond(request)
    }

    private func write(_ response: Response, to stream: UnsafeMutablePointer<FCGX_Stream>?) {
        let head = Array(response.head.utf8)
        head.withUnsafeBytes { _ = FCGX_PutStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), stream) }
        guard !response.body.isEmpty else { return }
        response.body.withUnsafeBytes {
            _ = FCGX_PutStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), stream)
        }
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
