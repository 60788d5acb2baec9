#if canImport(Glibc)
import Glibc
#endif

/// One connection from the web server: the records it sends, parsed into requests, and the
/// answers waiting to be written back.
///
/// Only the server's event thread touches this state: it reads, parses, writes (non-blocking)
/// and closes. Workers only carry the reference from a `Job` back in a `Completion`, so a
/// client that stops reading holds no worker, and a descriptor is never closed while another
/// thread might still use its number.
final class FastCGIConnection: @unchecked Sendable {
    let fd: Int32
    private let limits: Limits

    private var buffer: [UInt8] = []
    private var pending: [UInt16: PendingRequest] = [:]
    /// Request ids begun and not yet ended: still arriving, or with a worker.
    private var active: Set<UInt16> = []
    private var inFlight = 0
    private var output: [UInt8] = []
    private var outputStart = 0
    /// When the peer last sent bytes or took an answer (seconds since 1970): for the idle timeout.
    private(set) var lastActivity: Double

    /// The peer closed its side, or sent a record that is not FastCGI: nothing more is read.
    private(set) var inputEnded = false
    /// A write failed: nothing more can be sent.
    private var broken = false
    /// No new request is taken (FCGI_OVERLOADED), and the connection closes once those
    /// begun are answered and written: after a request without FCGI_KEEP_CONN (§5.1), or
    /// while the server stops.
    private var closing = false

    /// What one connection may hold.
    struct Limits {
        /// MAX_BODY_BYTES: a larger body is answered 413 and its remaining bytes dropped.
        var body: Int
        /// All FCGI_PARAMS of one request; nginx sends a few hundred bytes.
        var params = 64 * 1024
        /// Requests begun and not yet answered on one connection; more get FCGI_OVERLOADED
        /// (nginx sends one at a time).
        var requests = 8
        /// Bytes of parameters and bodies of requests still arriving, all together.
        var buffered: Int { 2 * body + 2 * params }
        /// Unwritten answers beyond which reading stops until the peer reads.
        var output = 256 * 1024
        /// Connections open at once (advertised as FCGI_MAX_CONNS).
        var connections = 1024
    }

    /// A request whose records are still arriving.
    private struct PendingRequest {
        var params: [UInt8] = []
        var environment: [String: String]?
        var body: [UInt8] = []
        var bytes: Int { params.count + body.count }
    }

    /// A complete request for a worker.
    struct Job: Sendable {
        let connection: FastCGIConnection
        let requestID: UInt16
        let request: Request
    }

    /// A worker's answer to a `Job`, as records ready to write.
    struct Completion: Sendable {
        let connection: FastCGIConnection
        let requestID: UInt16
        let records: [UInt8]
    }

    /// A record that is not FastCGI 1.0: the connection cannot be read any further.
    struct ProtocolError: Error, CustomStringConvertible {
        let description: String
    }

    init(fd: Int32, limits: Limits, now: Double, refusal: @escaping @Sendable (Int, String) -> Response) {
        self.fd = fd
        self.limits = limits
        self.lastActivity = now
        self.refusal = refusal
    }

    /// The answer to a request refused while arriving (status, reason): the application's
    /// format, since the protocol layer knows nothing of JSON.
    private let refusal: @Sendable (Int, String) -> Response

    /// Whether nothing is in flight or waiting to be written, and the peer has sent nothing
    /// since `deadline`: it may be closed (a slow or silent peer holds a connection slot).
    func isSilent(since deadline: Double) -> Bool {
        inFlight == 0 && outputStart == output.count && lastActivity < deadline
    }

    // MARK: State the event loop acts on

    /// Whether to read more: not while the peer is gone, nor while the most requests it may
    /// have are with workers, nor while it leaves our answers unread (back-pressure).
    var wantsInput: Bool {
        !inputEnded && !broken && !(closing && active.isEmpty)
            && inFlight < limits.requests && output.count - outputStart < limits.output
    }

    /// Whether answers wait for the socket to take them.
    var wantsOutput: Bool { !broken && outputStart < output.count }

    /// Whether the connection can be closed: every request begun is answered and written
    /// (or can no longer be), and no more are expected.
    var isDone: Bool {
        inFlight == 0 && (broken || outputStart == output.count)
            && (broken || inputEnded || (closing && active.isEmpty))
    }

    // MARK: Reading

    /// Parses the bytes just read. Returns the requests they complete; answers decided here
    /// (management replies, 4xx for requests refused while reading) go to the output.
    /// A record that is not FastCGI 1.0 ends the reading: the requests before it are still
    /// returned, then the connection closes once they are answered.
    func receive(_ bytes: UnsafeRawBufferPointer, now: Double) -> (jobs: [Job], error: ProtocolError?) {
        lastActivity = now
        buffer.append(contentsOf: bytes)
        var jobs: [Job] = []
        var offset = 0
        var failure: ProtocolError?
        while buffer.count - offset >= FastCGI.headerLength {
            guard let header = FastCGI.Header(buffer, at: offset) else {
                failure = ProtocolError(description: "record version \(buffer[offset]) is not FastCGI 1")
                break
            }
            let end = offset + FastCGI.headerLength + header.contentLength + header.paddingLength
            guard end <= buffer.count else { break }
            let content = Array(buffer[(offset + FastCGI.headerLength)..<(end - header.paddingLength)])
            offset = end
            do { try handle(header, content, into: &jobs) } catch {
                failure = error
                break
            }
        }
        buffer.removeFirst(offset)
        if failure != nil { endOfInput() }  // nothing after a bad record can be trusted
        inFlight += jobs.count
        return (jobs, failure)
    }

    /// The peer closed its side: requests still arriving can never complete.
    func endOfInput() {
        inputEnded = true
        buffer = []
        discardPending()
    }

    private func discardPending() {
        for id in pending.keys { active.remove(id) }
        pending = [:]
    }

    private func handle(_ header: FastCGI.Header, _ content: [UInt8], into jobs: inout [Job]) throws(ProtocolError) {
        let id = header.requestID
        guard let type = FastCGI.RecordType(rawValue: header.type) else {
            // §4.2: an unknown management record gets FCGI_UNKNOWN_TYPE; others are ignored.
            if id == 0 { FastCGI.appendRecord(.unknownType, 0, [header.type, 0, 0, 0, 0, 0, 0, 0], to: &output) }
            return
        }
        switch type {
        case .getValues:
            if id == 0 { output += valuesReply(content) }  // a management record (§4.1)
        case .beginRequest:
            guard content.count == 8 else {
                throw ProtocolError(description: "FCGI_BEGIN_REQUEST body of \(content.count) bytes")
            }
            // Id 0 is for management records; an id still in use is not begun again (§3.3).
            guard id != 0, !active.contains(id) else { return }
            let role = UInt16(content[0]) << 8 | UInt16(content[1])
            let keep = content[2] & FastCGI.keepConnection != 0
            if role != FastCGI.responderRole {
                FastCGI.appendEndRequest(id, .unknownRole, to: &output)
            } else if closing || active.count >= limits.requests {
                FastCGI.appendEndRequest(id, .overloaded, to: &output)  // §5.5: out of a resource
            } else {
                active.insert(id)
                pending[id] = PendingRequest()
                if !keep { closing = true }  // the application closes after answering (§5.1)
            }
        case .abortRequest:
            // Not yet with a worker: ended here (§5.4). One with a worker finishes normally.
            guard pending.removeValue(forKey: id) != nil else { return }
            active.remove(id)
            FastCGI.appendEndRequest(id, .requestComplete, to: &output)
        case .params:
            guard pending[id]?.environment == nil, pending[id] != nil else { return }
            if !content.isEmpty {
                pending[id]!.params += content
                if pending[id]!.params.count > limits.params {
                    refuse(id, 431, "Request headers are larger than \(limits.params) bytes")
                }
                return
            }
            guard let pairs = FastCGI.nameValuePairs(pending[id]!.params) else {
                return refuse(id, 400, "Malformed FastCGI parameters")
            }
            let environment = Dictionary(pairs.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
            switch Self.declaredLength(environment["CONTENT_LENGTH"]) {
            case .some(.some(let length)) where length > limits.body:
                // Refused before the body arrives: a client cannot make us buffer more than the limit.
                return refuse(id, 413, "Request body is larger than \(limits.body) bytes (MAX_BODY_BYTES)")
            case .none:
                return refuse(id, 400, "CONTENT_LENGTH is not a number of bytes")
            case .some(.some(let length)):
                pending[id]!.params = []
                pending[id]!.environment = environment
                // The whole body at once (at most the limit): growing by doubling would
                // hold up to twice it while a large one arrives.
                pending[id]!.body.reserveCapacity(length)
            default:
                pending[id]!.params = []
                pending[id]!.environment = environment
            }
        case .stdin:
            guard pending[id] != nil else { return }
            guard let environment = pending[id]!.environment else {
                return refuse(id, 400, "FCGI_STDIN arrived before the end of FCGI_PARAMS")
            }
            if !content.isEmpty {
                pending[id]!.body += content
                let buffered = pending.values.reduce(0) { $0 + $1.bytes }
                if pending[id]!.body.count > limits.body || buffered > limits.buffered {
                    refuse(id, 413, "Request body is larger than \(limits.body) bytes (MAX_BODY_BYTES)")
                }
                return
            }
            // The empty record ends the stream: the request is complete.
            let body = pending.removeValue(forKey: id)!.body
            if case .some(.some(let length)) = Self.declaredLength(environment["CONTENT_LENGTH"]), length != body.count
            {
                // §6.2: a body shorter or longer than CONTENT_LENGTH is not the request sent.
                return refuse(id, 400, "Request body has \(body.count) bytes, CONTENT_LENGTH says \(length)")
            }
            jobs.append(Job(connection: self, requestID: id, request: Self.request(environment, body: body)))
        case .data, .endRequest, .stdout, .stderr, .getValuesResult, .unknownType:
            return  // not sent to a Responder (§6.2); ignored
        }
    }

    /// CONTENT_LENGTH: `.some(nil)` when absent or empty (no body declared), `.some(n)` for a
    /// number of bytes, nil when it is not one.
    private static func declaredLength(_ value: String?) -> Int?? {
        guard let value, !value.isEmpty else { return .some(nil) }
        guard let length = Int(value), length >= 0 else { return nil }
        return .some(length)
    }

    /// Answers a request while it is still arriving and forgets it: the rest of its records
    /// find no request and are dropped, and it holds no memory.
    private func refuse(_ id: UInt16, _ status: Int, _ reason: String) {
        pending[id] = nil
        active.remove(id)
        output += FastCGIConnection.records(id, refusal(status, reason))
    }

    /// FCGI_GET_VALUES_RESULT (§4.1) for the variables we know, in the order asked.
    private func valuesReply(_ content: [UInt8]) -> [UInt8] {
        let known = [
            "FCGI_MAX_CONNS": "\(limits.connections)",
            "FCGI_MAX_REQS": "\(limits.connections * limits.requests)",
            "FCGI_MPXS_CONNS": "1",
        ]
        var pairs: [(String, String)] = []
        for (name, _) in FastCGI.nameValuePairs(content) ?? [] where !pairs.contains(where: { $0.0 == name }) {
            if let value = known[name] { pairs.append((name, value)) }  // each once: the reply fits a record
        }
        var out: [UInt8] = []
        FastCGI.appendRecord(.getValuesResult, 0, FastCGI.encodePairs(pairs), to: &out)
        return out
    }

    /// The CGI/1.1 meta-variables (RFC 3875 §4.1) the router reads.
    private static func request(_ env: [String: String], body: [UInt8]) -> Request {
        func nonEmpty(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        var request = Request(
            method: env["REQUEST_METHOD"] ?? "GET",
            path: nonEmpty("DOCUMENT_URI") ?? nonEmpty("SCRIPT_NAME") ?? "/",
            query: env["QUERY_STRING"] ?? "",
            contentType: nonEmpty("CONTENT_TYPE"),
            contentEncoding: env["HTTP_CONTENT_ENCODING"],
            remoteUser: nonEmpty("REMOTE_USER"),
            body: body
        )
        for (name, value) in env where name.hasPrefix("HTTP_") { request.headers[String(name.dropFirst(5))] = value }
        return request
    }

    // MARK: Answers and writing

    /// A response as FCGI_STDOUT records, the empty one ending the stream, and FCGI_END_REQUEST.
    static func records(_ id: UInt16, _ response: Response) -> [UInt8] {
        var stdout = Array(response.head.utf8)
        stdout += response.body
        var out: [UInt8] = []
        out.reserveCapacity(stdout.count + 64)
        FastCGI.appendStream(.stdout, id, stdout, to: &out)
        FastCGI.appendEndRequest(id, .requestComplete, to: &out)
        return out
    }

    /// Takes a worker's answer for writing.
    func complete(_ completion: Completion, now: Double) {
        lastActivity = now
        inFlight -= 1
        active.remove(completion.requestID)
        output += completion.records
    }

    /// From now on new requests are refused, and the connection closes once the requests
    /// begun are answered.
    func drain() {
        closing = true
    }

    /// Writes what the socket takes now without blocking (send(2) with MSG_DONTWAIT). A failed
    /// write (the peer is gone) drops the rest: nobody is left to read it.
    func flush() {
        while outputStart < output.count, !broken {
            let n = output.withUnsafeBytes {
                send(fd, $0.baseAddress! + outputStart, $0.count - outputStart, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if n >= 0 {
                outputStart += n
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                break
            } else if errno != EINTR {
                broken = true
            }
        }
        if outputStart == output.count || broken {
            output = []
            outputStart = 0
        } else if outputStart > 64 * 1024 {
            output.removeFirst(outputStart)  // keeps the buffer from growing with what is sent
            outputStart = 0
        }
    }
}
