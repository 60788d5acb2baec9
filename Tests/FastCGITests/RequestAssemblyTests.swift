import Foundation
import Testing

@testable import FastCGI

#if canImport(Glibc)
import Glibc
#endif

/// Records to requests in process: what `FastCGIConnection` makes of the bytes a web server
/// sends, and what it answers by itself. The e2e suite (Tests/e2e/test_fastcgi.py) keeps what
/// needs the real socket and threads: keep-alive, back-pressure, descriptors, stopping.
@Suite struct RequestAssemblyTests {
    static let bodyLimit = 64

    /// One connection over a socketpair: `peer` reads what the connection writes back.
    final class Harness {
        let connection: FastCGIConnection
        let peer: Int32

        init(requests: Int = 8) {
            var ends: [Int32] = [-1, -1]
            precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
            var limits = FastCGIConnection.Limits(body: RequestAssemblyTests.bodyLimit)
            limits.params = 1024
            limits.requests = requests
            connection = FastCGIConnection(fd: ends[0], limits: limits, now: 0, refusal: Response.plainText)
            peer = ends[1]
        }

        deinit {
            close(connection.fd)
            close(peer)
        }

        /// Feeds `bytes` in pieces of `chunk` bytes; returns every job and the last error.
        func receive(_ bytes: [UInt8], chunk: Int = .max) -> (jobs: [FastCGIConnection.Job], error: String?) {
            var jobs: [FastCGIConnection.Job] = []
            var error: String?
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + chunk)
                let result = bytes[start..<end].withUnsafeBytes { connection.receive($0, now: 1) }
                jobs += result.jobs
                if let failure = result.error { error = failure.description }
                start = end
            }
            return (jobs, error)
        }

        /// The records written back so far, as (type, request id, content).
        func answers() -> [(type: UInt8, id: UInt16, content: [UInt8])] {
            connection.flush()
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = recv(peer, &chunk, chunk.count, Int32(MSG_DONTWAIT))
                guard n > 0 else { break }
                bytes += chunk[0..<n]
            }
            var records: [(UInt8, UInt16, [UInt8])] = []
            var i = 0
            while i + 8 <= bytes.count, let header = FastCGI.Header(bytes, at: i) {
                let content = Array(bytes[(i + 8)..<(i + 8 + header.contentLength)])
                records.append((header.type, header.requestID, content))
                i += 8 + header.contentLength + header.paddingLength
            }
            return records
        }

        /// The HTTP status of the answer written for `id`, from its `Status:` line.
        func status(of id: UInt16) -> Int? {
            let stdout = answers().filter { $0.type == FastCGI.RecordType.stdout.rawValue && $0.id == id }
            let text = String(decoding: stdout.flatMap(\.content), as: UTF8.self)
            guard text.hasPrefix("Status: ") else { return nil }
            return Int(text.dropFirst(8).prefix(3))
        }
    }

    // MARK: Building records

    static func record(_ type: FastCGI.RecordType, _ id: UInt16, _ content: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = []
        FastCGI.appendRecord(type, id, content, to: &out)
        return out
    }

    static func begin(_ id: UInt16, role: UInt16 = FastCGI.responderRole, keep: Bool = true) -> [UInt8] {
        record(.beginRequest, id, [UInt8(role >> 8), UInt8(role & 0xFF), keep ? 1 : 0, 0, 0, 0, 0, 0])
    }

    static func params(_ id: UInt16, _ pairs: [(String, String)]) -> [UInt8] {
        record(.params, id, FastCGI.encodePairs(pairs)) + record(.params, id)
    }

    static func stdin(_ id: UInt16, _ body: [UInt8]) -> [UInt8] {
        (body.isEmpty ? [] : record(.stdin, id, body)) + record(.stdin, id)
    }

    static func environment(body: [UInt8], extra: [(String, String)] = []) -> [(String, String)] {
        [
            ("REQUEST_METHOD", "POST"), ("DOCUMENT_URI", "/email"), ("QUERY_STRING", "a=1&b=x+y"),
            ("CONTENT_TYPE", "application/json"), ("CONTENT_LENGTH", "\(body.count)"),
            ("REMOTE_USER", "demo"), ("HTTP_CONTENT_ENCODING", "gzip"),
        ] + extra
    }

    static func request(_ id: UInt16, body: [UInt8], extra: [(String, String)] = [], keep: Bool = true) -> [UInt8] {
        begin(id, keep: keep) + params(id, environment(body: body, extra: extra)) + stdin(id, body)
    }

    // MARK: Requests assembled

    @Test(arguments: [1, 3, 8, Int.max])
    func aRequestSplitAtAnyByteIsOneRequest(chunk: Int) throws {
        let harness = Harness()
        let body = Array(#"{"to":"a@example.org"}"#.utf8)
        let (jobs, error) = harness.receive(Self.request(5, body: body), chunk: chunk)
        #expect(error == nil)
        let request = try #require(jobs.first).request
        #expect(jobs.count == 1 && jobs[0].requestID == 5)
        #expect(request.method == "POST" && request.path == "/email" && request.query == "a=1&b=x+y")
        #expect(request.contentType == "application/json" && request.contentEncoding == "gzip")
        #expect(request.remoteUser == "demo" && request.body == body)
        #expect(request.queryItems == ["a": "1", "b": "x y"])
    }

    @Test func emptyValuesAreAbsentAndTheScriptNameStandsInForTheURI() throws {
        let harness = Harness()
        let env = [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/health"), ("CONTENT_TYPE", ""), ("REMOTE_USER", "")]
        let (jobs, _) = harness.receive(Self.begin(1) + Self.params(1, env) + Self.stdin(1, []))
        let request = try #require(jobs.first).request
        #expect(request.path == "/health" && request.contentType == nil && request.remoteUser == nil)
        #expect(request.body.isEmpty && request.query.isEmpty)
    }

    @Test func aBodySpanningSeveralRecordsIsJoinedInOrder() throws {
        let harness = Harness()
        let body = Array("0123456789abcdefghij".utf8)
        let stdin = Self.record(.stdin, 2, Array(body[0..<7])) + Self.record(.stdin, 2, Array(body[7...]))
        let bytes = Self.begin(2) + Self.params(2, Self.environment(body: body)) + stdin + Self.record(.stdin, 2)
        #expect(try #require(harness.receive(bytes).jobs.first).request.body == body)
    }

    @Test func interleavedRequestsOnOneConnectionAreBothAssembled() {
        let harness = Harness()
        let a = Self.request(3, body: Array("aaa".utf8))
        let b = Self.request(4, body: Array("bb".utf8))
        // Record by record, alternating: begin 3, begin 4, params 3, params 4, ...
        func records(_ bytes: [UInt8]) -> [[UInt8]] {
            var out: [[UInt8]] = []
            var i = 0
            while i < bytes.count, let header = FastCGI.Header(bytes, at: i) {
                let end = i + 8 + header.contentLength + header.paddingLength
                out.append(Array(bytes[i..<end]))
                i = end
            }
            return out
        }
        let (ra, rb) = (records(a), records(b))
        var mixed: [UInt8] = []
        for i in 0..<max(ra.count, rb.count) {
            if i < ra.count { mixed += ra[i] }
            if i < rb.count { mixed += rb[i] }
        }
        let jobs = harness.receive(mixed).jobs
        #expect(jobs.map(\.requestID).sorted() == [3, 4])
        #expect(Set(jobs.map { String(decoding: $0.request.body, as: UTF8.self) }) == ["aaa", "bb"])
    }

    // MARK: Requests refused while arriving

    /// A request refused while arriving: the bytes after its BEGIN_REQUEST (id 1), and the
    /// status answered for it.
    struct Refusal: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let bytes: [UInt8]
        let status: Int
    }

    static let refusals = [
        Refusal(
            testDescription: "body longer than declared",
            bytes: params(1, environment(body: [0, 0])) + stdin(1, [1, 2, 3]),
            status: 400
        ),
        Refusal(
            testDescription: "body shorter than declared",
            bytes: params(1, environment(body: [0, 0, 0, 0])) + stdin(1, [1]),
            status: 400
        ),
        Refusal(
            testDescription: "length not a number",
            bytes: params(1, [("CONTENT_LENGTH", "12x")]) + stdin(1, []),
            status: 400
        ),
        Refusal(
            testDescription: "negative length",
            bytes: params(1, [("CONTENT_LENGTH", "-1")]) + stdin(1, []),
            status: 400
        ),
        Refusal(
            testDescription: "declared over the limit",
            bytes: params(1, [("CONTENT_LENGTH", "\(bodyLimit + 1)")]),
            status: 413
        ),
        Refusal(
            testDescription: "undeclared over the limit",
            bytes: params(1, []) + stdin(1, [UInt8](repeating: 7, count: bodyLimit + 1)),
            status: 413
        ),
        Refusal(
            testDescription: "stdin before the end of params",
            bytes: record(.params, 1, encodePairs([("A", "b")])) + stdin(1, [1]),
            status: 400
        ),
        Refusal(
            testDescription: "a pair running past the end",
            bytes: record(.params, 1, [5, 200, 65, 66]) + record(.params, 1),
            status: 400
        ),
        Refusal(
            testDescription: "params over the limit",
            bytes: record(.params, 1, encodePairs([("X", String(repeating: "v", count: 1100))])),
            status: 431
        ),
    ]

    @Test(arguments: refusals)
    func refused(_ refusal: Refusal) {
        let harness = Harness()
        let (jobs, error) = harness.receive(Self.begin(1) + refusal.bytes)
        #expect(jobs.isEmpty)
        #expect(error == nil)
        #expect(harness.status(of: 1) == refusal.status)
    }

    private static func encodePairs(_ pairs: [(String, String)]) -> [UInt8] { FastCGI.encodePairs(pairs) }

    @Test func recordsOfARefusedRequestAreDroppedAndTheNextRequestIsAnswered() {
        let harness = Harness()
        let refused = Self.begin(1) + Self.params(1, [("CONTENT_LENGTH", "\(Self.bodyLimit + 1)")])
        let late = Self.record(.stdin, 1, [UInt8](repeating: 1, count: Self.bodyLimit)) + Self.record(.stdin, 1)
        let (jobs, _) = harness.receive(refused + late + Self.request(2, body: [9]))
        #expect(jobs.map(\.requestID) == [2])
        #expect(harness.status(of: 1) == 413)
    }

    @Test func anAbortBeforeTheBodyEndsEndsTheRequestWithNoJob() {
        let harness = Harness()
        let bytes = Self.begin(1) + Self.params(1, Self.environment(body: [1, 2])) + Self.record(.stdin, 1, [1])
        let (jobs, _) = harness.receive(bytes + Self.record(.abortRequest, 1) + Self.record(.stdin, 1))
        #expect(jobs.isEmpty)
        let end = harness.answers().filter { $0.type == FastCGI.RecordType.endRequest.rawValue }
        #expect(end.map(\.id) == [1] && end.first?.content[4] == FastCGI.ProtocolStatus.requestComplete.rawValue)
    }

    // MARK: Protocol answers

    @Test func aRecordThatIsNotVersion1EndsReadingAfterTheRequestsBeforeIt() {
        let harness = Harness()
        var bad = Self.begin(7)
        bad[0] = 2
        let (jobs, error) = harness.receive(Self.request(1, body: []) + bad + Self.request(2, body: []))
        #expect(jobs.map(\.requestID) == [1])
        #expect(error?.contains("version 2") == true)
        #expect(!harness.connection.wantsInput)
    }

    @Test func idZeroAndAnIdInUseAreNotBegun() {
        let harness = Harness()
        let (jobs, _) = harness.receive(
            Self.begin(0) + Self.begin(1) + Self.begin(1) + Self.params(1, Self.environment(body: []))
                + Self.stdin(1, [])
        )
        #expect(jobs.map(\.requestID) == [1])
        #expect(harness.answers().isEmpty)
    }

    @Test func requestsBeyondTheLimitAreRefusedAsOverloaded() {
        let harness = Harness(requests: 2)
        _ = harness.receive(Self.begin(1) + Self.begin(2) + Self.begin(3))
        let end = harness.answers().filter { $0.type == FastCGI.RecordType.endRequest.rawValue }
        #expect(end.map(\.id) == [3] && end.first?.content[4] == FastCGI.ProtocolStatus.overloaded.rawValue)
    }

    @Test func anotherRoleIsRefusedAsUnknownRole() {
        let harness = Harness()
        _ = harness.receive(Self.begin(1, role: 2) + Self.params(1, []) + Self.stdin(1, []))
        let end = harness.answers().filter { $0.type == FastCGI.RecordType.endRequest.rawValue }
        #expect(end.first?.content[4] == FastCGI.ProtocolStatus.unknownRole.rawValue)
    }

    @Test func getValuesAnswersEachKnownNameOnceInOneRecord() throws {
        let harness = Harness()
        // Thousands of names in one record: the reply still names each known one once.
        let asked = [(String, String)](repeating: ("FCGI_MPXS_CONNS", ""), count: 3_000)
        let content = FastCGI.encodePairs(asked + [("FCGI_MAX_CONNS", ""), ("OTHER", "")])
        _ = harness.receive(Self.record(.getValues, 0, content))
        let reply = try #require(harness.answers().first)
        #expect(reply.type == FastCGI.RecordType.getValuesResult.rawValue && reply.id == 0)
        let pairs = try #require(FastCGI.nameValuePairs(reply.content))
        #expect(pairs.map(\.name) == ["FCGI_MPXS_CONNS", "FCGI_MAX_CONNS"])
        #expect(pairs.first?.value == "1")
    }

    @Test func anUnknownManagementRecordGetsUnknownTypeAndAnUnknownRequestRecordNothing() throws {
        let harness = Harness()
        var unknown = Self.record(.getValues, 0)
        unknown[1] = 42
        var unknownForRequest = unknown
        unknownForRequest[3] = 1
        _ = harness.receive(unknown + unknownForRequest)
        let answers = harness.answers()
        #expect(answers.count == 1)
        #expect(answers.first?.type == FastCGI.RecordType.unknownType.rawValue && answers.first?.content.first == 42)
    }

    @Test func withoutKeepConnTheConnectionIsDoneOnceItsAnswerIsWritten() throws {
        let harness = Harness()
        let (jobs, _) = harness.receive(Self.request(1, body: [], keep: false) + Self.request(2, body: []))
        #expect(jobs.map(\.requestID) == [1])  // nothing after it is begun (§5.1)
        #expect(!harness.connection.isDone)
        let job = try #require(jobs.first)
        let records = FastCGIConnection.records(1, Response(status: 204))
        harness.connection.complete(.init(connection: job.connection, requestID: 1, records: records), now: 2)
        #expect(harness.status(of: 1) == 204)
        #expect(harness.connection.isDone)
    }
}
