import FastCGI
import Foundation
import Logging
import MailModel
import Queue

/// `GET /status?limit=N`: queue statistics, and metadata of at most `limit` queue files
/// (default 100, at most 1000), so the answer stays fast at any depth.
struct StatusRoute: Sendable {
    let queue: any QueueStore

    struct Counts: Encodable {
        let total_files: Int
        let pending: Int
        /// Waiting for a time: a retry's (`deferred` files) or a `send_at` (`scheduled` files).
        let deferred: Int
        let processing: Int
        let dead_letter: Int
        let trash: Int
        let corrupt: Int
    }

    /// One queue file as the Python service lists it (one email per file here).
    struct Batch: Encodable {
        let batch_id: String
        let email_count: Int
        let status: String
        let created_at: String?
    }

    struct Body: Encodable {
        /// The Python service's fields first, for its clients: queue files and emails waiting
        /// (pending, deferred and being sent), one email per file, and the first files.
        let total_batches: Int
        let total_emails: Int
        let batch_size: Int
        let batches: [Batch]
        let status: String
        let timestamp: String
        /// The seed's two top-level figures, kept for its clients.
        let total_files: Int
        let pending_emails: Int
        let queue: Counts
        let limit: Int
        let files: [QueueCensus.FileInfo]
    }

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        let limit = try Self.limit(request.queryItems["limit"])
        let report = try queue.census(limit: limit, now: Date())
        let counts = Counts(
            total_files: report.total,
            pending: report.pending,
            deferred: report.deferred + report.scheduled,
            processing: report.processing,
            dead_letter: report.deadLetter,
            trash: report.trash,
            corrupt: report.corrupt
        )
        let batches = report.files.map { file in
            Batch(
                batch_id: String(file.file.split(separator: "/").last!.split(separator: ".").first!),
                email_count: 1,
                status: file.state,
                created_at: file.created_at
            )
        }
        return Response.json(
            Body(
                total_batches: report.total,
                total_emails: report.total,
                batch_size: 1,
                batches: batches,
                status: "ok",
                timestamp: Timestamp.iso8601(Date()),
                total_files: report.total,
                pending_emails: report.pending + report.scheduled + report.deferred,
                queue: counts,
                limit: limit,
                files: report.files
            )
        )
    }

    /// - Throws: `HTTPError` 422 when `limit` is not a whole number in 0...1000.
    static func limit(_ raw: String?) throws -> Int {
        guard let raw else { return 100 }
        guard let value = Int(raw), (0...1000).contains(value) else {
            throw HTTPError.validation([
                FieldError(
                    [.key("query"), .key("limit")],
                    "Input should be a whole number from 0 to 1000",
                    type: "int_parsing"
                )
            ])
        }
        return value
    }
}
