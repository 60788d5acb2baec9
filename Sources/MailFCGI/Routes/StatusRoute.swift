import Core
import Foundation
import Logging

/// `GET /status?limit=N`: queue statistics, and metadata of at most `limit` queue files
/// (default 100, at most 1000), so the answer stays fast at any depth.
struct StatusRoute: Sendable {
    let census: QueueCensus

    struct Counts: Encodable {
        let total_files: Int
        let pending: Int
        let deferred: Int
        let processing: Int
        let dead_letter: Int
        let trash: Int
        let corrupt: Int
    }

    struct Body: Encodable {
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
        let report = try census.take(limit: limit)
        let counts = Counts(
            total_files: report.total, pending: report.pending, deferred: report.deferred,
            processing: report.processing, dead_letter: report.deadLetter, trash: report.trash,
            corrupt: report.corrupt)
        return Response.json(Body(
            status: "ok", timestamp: Timestamp.iso8601(Date()), total_files: report.total,
            pending_emails: report.pending + report.deferred, queue: counts, limit: limit, files: report.files))
    }

    /// - Throws: `HTTPError` 422 when `limit` is not a whole number in 0...1000.
    static func limit(_ raw: String?) throws -> Int {
        guard let raw else { return 100 }
        guard let value = Int(raw), (0...1000).contains(value) else {
            throw HTTPError.validation([FieldError(
                [.key("query"), .key("limit")], "Input should be a whole number from 0 to 1000", type: "int_parsing")])
        }
        return value
    }
}
