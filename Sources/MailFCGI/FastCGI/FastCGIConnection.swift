import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One connection from the web server: the records it sends, parsed into requests, and the
/// responses written back.
///
/// Reading (`receive`) happens on the server's event thread only. Responses are written by
/// worker threads (`send`, `finished`), one at a time per connection, so several requests of
/// one connection may be answered in any order (FCGI_MPXS_CONNS, FastCGI 1.0 §3.3).
/// Whoever sees the connection idle and done last closes the descriptor: the event thread
/// while it still watches it, otherwise the worker that finishes the last request.
final class FastCGIConnection: @unchecked Sendable {
    let fd: Int32
    private let limits: Limits

    // Event thread only.
    private var buffer: [UInt8] = []
    private var pending: [UInt16: PendingRequest] = [:]

    // Shared between the event thread and workers.
    private struct Shared {
        var inFlight = 0
        /// The event thread stopped watching: the worker finishing the last request closes.
        var detached = false
        var closed = false
    }
    private let shared = Mutex(Shared())
    private let writing = Mutex(())

    /// Byte limits on what a request may send.
    struct Limits {
        /// MAX_BODY_BYTES: larger bodies are answered 413 and their remaining bytes dropped.
        var body: Int
        /// All FCGI_PARAMS of one request; nginx sends a few hundred bytes.
        var params = 64 * 1024
    }

    /// A request whose records are still arriving.
    private struct PendingRequest {
        var keepConnection: Bool
        var params: [UInt8] = []
        var environment: [String: String]?
        var body: [UInt8] = []
        /// Already answered (413, 431, 400): the rest of its records are dropped.
        var answered = false
    }

    /// What a complete request asks of a worker.
    enum Work {
        /// A request for the router.
        case request(Request)
        /// An answer decided while reading (a body too large, malformed parameters).
        case response(Response)
        /// Records written as they are (management replies, FCGI_END_REQUEST alone).
        case records([UInt8])
    }

    /// One unit of work for a worker thread.
    struct Job {
        let connection: FastCGIConnection
        let requestID: UInt16
        let keepConnection: Bool
        let work: Work
    }

    /// Why the connection has to be dropped without an answer.
    struct ProtocolError: Error, CustomStringConvertible {
        let description: String
    }

    init(fd: Int32, limits: Limits) {
        self.fd = fd
        self.limits = limits
    }

    // MARK: Reading (event thread)

    /// Parses the bytes just read and returns the jobs they complete, in order.
    /// - Throws: `ProtocolError` for a record that is not FastCGI 1.0; the caller closes.
    func receive(_ bytes: UnsafeRawBufferPointer) throws(ProtocolError) -> [Job] {
        buffer.append(contentsOf: bytes)
        var jobs: [Job] = []
        var offset = 0
        while buffer.count - offset >= FastCGI.headerLength {
            guard let header = FastCGI.Header(buffer, at: offset) else {
                throw ProtocolError(description: "record version \(buffer[offset]) is not FastCGI 1")
            }
            let end = offset + FastCGI.headerLength + header.contentLength + header.paddingLength
            guard end <= buffer.count else { break }
            let content = Array(buffer[(offset + FastCGI.headerLength)..<(end - header.paddingLength)])
            try handle(header, content, into: &jobs)
            offset = end
        }
        buffer.removeFirst(offset)
        return jobs
    }

    private func handle(_ header: FastCGI.Header, _ content: [UInt8], into jobs: inout [Job]) throws(ProtocolError) {
        let id = header.requestID
        guard let type = FastCGI.RecordType(rawValue: header.type) else {
            // §4.2: unknown management records get FCGI_UNKNOWN_TYPE; others are ignored.
            if id == 0 {
                var out: [UInt8] = []
                FastCGI.appendRecord(.unknownType, 0, [header.type, 0, 0, 0, 0, 0, 0, 0], to: &out)
                jobs.append(Job(connection: self, requestID: 0, keepConnection: true, work: .records(out)))
            }
            return
        }
        switch type {
        case .getValues:
            jobs.append(Job(connection: self, requestID: 0, keepConnection: true, work: .records(valuesReply(content))))
        case .beginRequest:
            guard content.count == 8 else { throw ProtocolError(description: "FCGI_BEGIN_REQUEST body of \(content.count) bytes") }
            let role = UInt16(content[0]) << 8 | UInt16(content[1])
            let keep = content[2] & FastCGI.keepConnection != 0
            guard role == FastCGI.responderRole else {
                var out: [UInt8] = []
                FastCGI.appendEndRequest(id, .unknownRole, to: &out)
                jobs.append(Job(connection: self, requestID: id, keepConnection: keep, work: .records(out)))
                return
            }
            pending[id] = PendingRequest(keepConnection: keep)
        case .abortRequest:
            // Not yet handed to a worker: end it here (§5.4). A request being answered finishes.
            guard let request = pending.removeValue(forKey: id), !request.answered else { return }
            var out: [UInt8] = []
            FastCGI.appendEndRequest(id, .requestComplete, to: &out)
            jobs.append(Job(connection: self, requestID: id, keepConnection: request.keepConnection, work: .records(out)))
        case .params:
            guard var request = pending[id] else { return }
            defer { pending[id] = request }
            guard !request.answered, request.environment == nil else { return }
            if !content.isEmpty {
                request.params += content
                if request.params.count > limits.params {
                    answer(&request, id, HTTPError(431, "Request headers are larger than \(limits.params) bytes"), &jobs)
                }
                return
            }
            guard let pairs = FastCGI.nameValuePairs(request.params) else {
                answer(&request, id, HTTPError(400, "Malformed FastCGI parameters"), &jobs)
                return
            }
            request.params = []
            request.environment = Dictionary(pairs.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
            // Refused before the body arrives: a client cannot make us buffer more than the limit.
            if let length = request.environment?["CONTENT_LENGTH"].flatMap(Int.init), length > limits.body {
                answer(&request, id, HTTPError(413, "Request body is larger than \(limits.body) bytes"), &jobs)
            }
        case .stdin:
            guard var request = pending[id] else { return }
            if !content.isEmpty {
                defer { pending[id] = request }
                guard !request.answered else { return }
                request.body += content
                if request.body.count > limits.body {
                    request.body = []
                    answer(&request, id, HTTPError(413, "Request body is larger than \(limits.body) bytes"), &jobs)
                }
                return
            }
            pending[id] = nil  // the empty record ends the stream: the request is complete
            guard !request.answered else { return }
            guard let environment = request.environment else {
                answer(&request, id, HTTPError(400, "FCGI_STDIN ended before FCGI_PARAMS"), &jobs)
                return
            }
            jobs.append(Job(connection: self, requestID: id, keepConnection: request.keepConnection,
                            work: .request(Self.request(environment, body: request.body))))
        case .data, .endRequest, .stdout, .stderr, .getValuesResult, .unknownType:
            return  // not sent to a Responder (§6.2); ignored
        }
    }

    private func answer(_ request: inout PendingRequest, _ id: UInt16, _ error: HTTPError, _ jobs: inout [Job]) {
        request.answered = true
        jobs.append(Job(connection: self, requestID: id, keepConnection: request.keepConnection,
                        work: .response(error.response)))
    }

    /// FCGI_GET_VALUES_RESULT (§4.1) for the variables we know, in the order asked.
    private func valuesReply(_ content: [UInt8]) -> [UInt8] {
        let known = ["FCGI_MAX_CONNS": "1024", "FCGI_MAX_REQS": "1024", "FCGI_MPXS_CONNS": "1"]
        let asked = FastCGI.nameValuePairs(content) ?? []
        let pairs = asked.compactMap { pair in known[pair.name].map { (pair.name, $0) } }
        var out: [UInt8] = []
        FastCGI.appendRecord(.getValuesResult, 0, FastCGI.encodePairs(pairs), to: &out)
        return out
    }

    /// The CGI/1.1 meta-variables (RFC 3875 §4.1) the router reads.
    private static func request(_ env: [String: String], body: [UInt8]) -> Request {
        func nonEmpty(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        return Request(
            method: env["REQUEST_METHOD"] ?? "GET",
            path: nonEmpty("DOCUMENT_URI") ?? nonEmpty("SCRIPT_NAME") ?? "/",
            query: env["QUERY_STRING"] ?? "",
            contentType: nonEmpty("CONTENT_TYPE"),
            contentEncoding: env["HTTP_CONTENT_ENCODING"],
            remoteUser: nonEmpty("REMOTE_USER"),
            body: body)
    }

    // MARK: Bookkeeping shared by both sides

    /// Counts jobs handed to workers; the connection stays open until each has finished.
    func dispatched(_ count: Int) {
        shared.withLock { $0.inFlight += count }
    }

    /// Called by the event thread when the peer closed, the stream broke, or the server
    /// drains. Closes now when nothing is in flight and returns true; otherwise the last
    /// worker to finish closes, and it returns false.
    func detach() -> Bool {
        shared.withLock { state in
            state.detached = true
            guard state.inFlight == 0, !state.closed else { return state.closed }
            state.closed = true
            close(fd)
            return true
        }
    }

    /// Whether nothing is in flight and no request is partly received (event thread only).
    var isIdle: Bool {
        pending.isEmpty && buffer.isEmpty && shared.withLock { $0.inFlight == 0 }
    }

    // MARK: Writing (workers)

    /// Writes `bytes` whole. A peer that has gone away makes the write fail quietly: the
    /// request was answered, nobody is left to read it.
    func send(_ bytes: [UInt8]) {
        writing.withLock { _ in
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                    if n < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += n
                }
            }
        }
    }

    /// Ends one job. Without FCGI_KEEP_CONN, or while the server drains, the application
    /// closes the connection after answering (§5.1): shutdown(2) here lets the event thread
    /// see the end of the stream; a detached connection is closed by its last worker.
    func finished(keepConnection: Bool, draining: Bool) {
        shared.withLock { state in
            state.inFlight -= 1
            guard state.inFlight == 0, !state.closed else { return }
            if state.detached {
                state.closed = true
                close(fd)
            } else if !keepConnection || draining {
                shutdown(fd, Int32(SHUT_RDWR))
            }
        }
    }
}
