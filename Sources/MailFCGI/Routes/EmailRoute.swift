import Core
import Foundation
import Logging

/// `POST /email`: validates the request, stores it as one durable queue file, and answers
/// with its `request_id`. Nothing is written unless the whole request is valid.
struct EmailRoute: Sendable {
    let queue: FileQueue
    let composer: MessageComposer

    struct Accepted: Encodable {
        let request_id: String
        let message: String
        let status: String
        let timestamp: String
    }

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        let fields = try EmailRequest.parse(request)
        let now = Date()
        let requestID = RequestID.make(at: now)
        let email = QueuedEmail(
            requestID: requestID, messageID: composer.makeMessageID(requestID: requestID),
            createdAt: now, toEmail: fields.toEmail, cc: fields.cc, bcc: fields.bcc,
            replyTo: fields.replyTo, subject: fields.subject, body: fields.body,
            htmlBody: fields.htmlBody, format: fields.format, priority: fields.priority,
            submittedBy: request.remoteUser)
        try queue.enqueue(email)
        var log = logger
        log[metadataKey: "request_id"] = "\(requestID)"
        log.info("queued", metadata: ["user": "\(request.remoteUser ?? "-")", "priority": "\(fields.priority)"])
        return Response.json(Accepted(
            request_id: requestID, message: "Email queued successfully", status: "queued",
            timestamp: Timestamp.iso8601(now)))
    }
}
