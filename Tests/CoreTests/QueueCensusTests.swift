import Foundation
import Testing

@testable import Delivery
@testable import MailModel
@testable import Queue

@Suite struct QueueCensusTests {
    let dir = TemporaryDirectory()

    func email(_ n: Int, at date: Date) -> QueuedEmail {
        let id = RequestID.make(at: date)
        return QueuedEmail(
            requestID: id,
            messageID: "<\(id)@x.org>",
            createdAt: date,
            toEmail: "u\(n)@example.com",
            subject: "s",
            body: "b"
        )
    }

    @Test func countsEveryStateAndNoticesDeferralsOfKnownFiles() throws {
        let queue = try FileQueue(layout: QueueLayout(root: dir.path))
        let policy = DeliveryPolicy(retry: RetryPolicy(maxRetries: 1, baseDelay: 60))
        let census = QueueCensus(layout: queue.layout)
        let start = Date()
        let emails = (0..<5).map { email($0, at: start.addingTimeInterval(Double($0) / 1000)) }
        for e in emails { try queue.enqueue(e) }
        var report = try census.take(limit: 100)
        #expect((report.pending, report.deferred, report.processing, report.total) == (5, 0, 0, 5))

        let sent = try #require(try queue.claim(now: Date()))
        try queue.markSent(sent, at: Date())
        let failing = try #require(try queue.claim(now: Date()))
        // Rewritten: a new inode.
        _ = try queue.markFailed(failing, error: "451", permanent: false, at: Date(), policy: policy)
        let dead = try #require(try queue.claim(now: Date()))
        _ = try queue.markFailed(dead, error: "550", permanent: true, at: Date(), policy: policy)
        let held = try #require(try queue.claim(now: Date()))

        report = try census.take(limit: 100)
        #expect(report.pending == 1)
        #expect(report.deferred == 1)
        #expect(report.processing == 1)
        #expect(report.deadLetter == 1)
        #expect(report.trash == 1)
        #expect(report.total == 3)
        // Claimed first, then pending files in arrival order: e1 (deferred), e4 (due).
        #expect(report.files.map(\.state) == ["processing", "deferred", "pending"])
        #expect(report.files.map(\.request_id) == [held.email.requestID, failing.email.requestID, emails[4].requestID])
        #expect([sent, failing, dead, held].map(\.email.requestID) == emails[0..<4].map(\.requestID))
        #expect(report.files[1].retry_count == 1)
        #expect(report.files[1].next_attempt_at != nil)
    }

    @Test func limitBoundsTheFilesDescribed() throws {
        let queue = try FileQueue(layout: QueueLayout(root: dir.path))
        for n in 0..<20 { try queue.enqueue(email(n, at: Date().addingTimeInterval(Double(n) / 1000))) }
        let report = try QueueCensus(layout: queue.layout).take(limit: 7)
        #expect(report.pending == 20)
        #expect(report.files.count == 7)
        #expect(report.files.map(\.file) == report.files.map(\.file).sorted())
        #expect(report.files.allSatisfy { $0.size_bytes > 0 && $0.priority == 2 && $0.retry_count == 0 })
    }
}
