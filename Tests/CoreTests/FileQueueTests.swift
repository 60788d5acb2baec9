import Foundation
import Testing
@testable import Core

@Suite struct FileQueueTests {
    let dir = TemporaryDirectory()

    func makeQueue(retry: RetryPolicy = RetryPolicy(maxRetries: 2, baseDelay: 1)) throws -> FileQueue {
        try FileQueue(layout: QueueLayout(root: dir.path), retry: retry)
    }

    func email(_ n: Int = 0, at date: Date = Date(), priority: Int = 2) -> QueuedEmail {
        let id = RequestID.make(at: date)
        return QueuedEmail(requestID: id, messageID: "<\(id)@example.org>", createdAt: date,
                           toEmail: "u\(n)@example.com", subject: "s\(n)", body: "b\(n)", priority: priority)
    }

    /// Equal but for `createdAt`, which the file keeps to the millisecond.
    func sameEmail(_ a: QueuedEmail, _ b: QueuedEmail) -> Bool {
        var a = a
        guard abs(a.createdAt.timeIntervalSince(b.createdAt)) < 0.001 else { return false }
        a.createdAt = b.createdAt
        return a == b
    }

    @Test func enqueueWritesOneFileNamedAfterTheRequestID() throws {
        let queue = try makeQueue()
        let e = email()
        try queue.enqueue(e)
        #expect(dir.names("queue") == [RequestID.fileBaseName(for: e.requestID)! + ".json"])
    }

    @Test func claimIsFIFOAndRoundTripsTheEmail() throws {
        let queue = try makeQueue()
        let start = Date()
        let emails = (0..<5).map { email($0, at: start.addingTimeInterval(Double($0) / 1000)) }
        for e in emails.reversed() { try queue.enqueue(e) }
        var claimed: [QueuedEmail] = []
        while let claim = try queue.claim(now: Date()) {
            claimed.append(claim.email)
            try queue.markSent(claim, at: Date())
        }
        #expect(claimed.map(\.toEmail) == emails.map(\.toEmail))
        #expect(sameEmail(claimed[0], emails[0]))
        #expect(dir.names("queue").isEmpty)
        #expect(dir.names("trash").count == 5)
        #expect(dir.names("trash").allSatisfy { $0.contains(".sent.") })
    }

    @Test func aClaimIsExclusive() throws {
        let queue = try makeQueue()
        let other = try makeQueue()  // another process's view of the same directory
        try queue.enqueue(email())
        let first = try #require(try queue.claim(now: Date()))
        #expect(try other.claim(now: Date()) == nil)
        #expect(dir.names("queue") == [first.name + ".processing.json"])
    }

    @Test func concurrentClaimantsNeverShareAnEmail() async throws {
        let total = 400
        let writer = try makeQueue()
        for n in 0..<total { try writer.enqueue(email(n)) }
        let counts = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                let queue = try makeQueue()
                group.addTask {
                    var mine: [String] = []
                    while let claim = try queue.claim(now: Date()) {
                        mine.append(claim.email.requestID)
                        try queue.markSent(claim, at: Date())
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(counts.count == total)
        #expect(Set(counts).count == total)
    }

    @Test func transientFailureDefersWithExponentialBackoffThenDeadLetters() throws {
        let queue = try makeQueue()
        try queue.enqueue(email())
        var now = Date()
        var delays: [TimeInterval] = []
        for _ in 0..<2 {
            let claim = try #require(try queue.claim(now: now))
            guard case .deferred(let until) = try queue.markFailed(claim, error: "451 try later", permanent: false, at: now) else {
                Issue.record("expected a deferral")
                return
            }
            delays.append(until.timeIntervalSince(now))
            #expect(try queue.claim(now: now) == nil, "a deferred email is not due yet")
            now = until
        }
        #expect(delays == [1, 2])
        let last = try #require(try queue.claim(now: now))
        #expect(last.email.retryCount == 2)
        #expect(last.email.lastError == "451 try later")
        #expect(try queue.markFailed(last, error: "451 still", permanent: false, at: now) == .deadLettered)
        #expect(dir.names("queue").isEmpty)
        let letterPath = dir.path + "/dead_letter/" + dir.names("dead_letter")[0]
        let letter = try QueueCoding.decoder().decode(DeadLetter.self, from: Data(contentsOf: URL(fileURLWithPath: letterPath)))
        #expect(letter.kind == "retries_exhausted")
        #expect(letter.attempts.map(\.error) == ["451 try later", "451 try later", "451 still"])
        #expect(letter.email.toEmail == "u0@example.com")
    }

    @Test func permanentFailureDeadLettersAtOnce() throws {
        let queue = try makeQueue()
        try queue.enqueue(email())
        let claim = try #require(try queue.claim(now: Date()))
        #expect(try queue.markFailed(claim, error: "550 no such user", permanent: true, at: Date()) == .deadLettered)
        #expect(dir.names("dead_letter").count == 1)
        #expect(dir.names("queue").isEmpty)
    }

    @Test func aDeferredEmailDoesNotBlockTheOnesBehindIt() throws {
        let queue = try makeQueue()
        let start = Date()
        try queue.enqueue(email(0, at: start))
        try queue.enqueue(email(1, at: start.addingTimeInterval(0.001)))
        let first = try #require(try queue.claim(now: start))
        _ = try queue.markFailed(first, error: "421 busy", permanent: false, at: start)
        let second = try #require(try queue.claim(now: start))
        #expect(second.email.toEmail == "u1@example.com")
    }

    @Test(arguments: [("{not json", "invalid_json"), ("", "invalid_json"), ("{\"to_email\": 5}", "invalid_entry"),
                      ("{\"request_id\":", "invalid_json")])
    func badFilesAreSetAsideAndTheRestIsDelivered(_ content: String, _ status: String) throws {
        let queue = try makeQueue()
        let bad = "batch_1000000000000_deadbeef.json"
        try Data(content.utf8).write(to: URL(fileURLWithPath: dir.path + "/queue/" + bad))
        try queue.enqueue(email())
        let claim = try #require(try queue.claim(now: Date()))
        #expect(claim.email.toEmail == "u0@example.com")
        let trash = dir.names("trash")
        #expect(trash.count == 1)
        #expect(trash[0].hasPrefix("batch_1000000000000_deadbeef.\(status)."))
    }

    @Test func recoverClaimsPutsClaimsBackAndRemovesTempFiles() throws {
        let queue = try makeQueue()
        try queue.enqueue(email())
        _ = try #require(try queue.claim(now: Date()))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: dir.path + "/queue/.tmp-batch_1_aaaaaaaa.json"))
        let restarted = try makeQueue()
        #expect(try restarted.recoverClaims() == 1)
        #expect(dir.names("queue").count == 1)
        #expect(dir.names("queue")[0].hasSuffix(".json") && !dir.names("queue")[0].contains("processing"))
        #expect(try restarted.claim(now: Date()) != nil)
    }

    @Test func releaseGivesTheClaimBackUnchanged() throws {
        let queue = try makeQueue()
        let e = email()
        try queue.enqueue(e)
        let claim = try #require(try queue.claim(now: Date()))
        try queue.release(claim)
        #expect(sameEmail(try #require(try queue.claim(now: Date())).email, e))
    }
}
