import Composition
import FastCGI
import Foundation
import Logging
import MailModel
import Platform
import Queue
import Templates

/// `POST /email`: validates the request, stores it as one durable queue file, and answers
/// with its `request_id`. Nothing is written unless the whole request is valid.
struct EmailRoute: Sendable {
    let queue: FileQueue
    let composer: MessageComposer
    let templates: TemplateStore
    /// `MAX_SCHEDULE_DAYS` in seconds.
    var maxScheduleAhead: TimeInterval = 30 * 86_400

    struct Accepted: Encodable {
        let request_id: String
        let message: String
        let status: String
        let timestamp: String
    }

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        let now = Date()
        let fields = try EmailRequest.parse(request, now: now, maxScheduleAhead: maxScheduleAhead)
        let content = try Self.content(of: fields, templates: templates)
        let requestID = RequestID.make(at: now)
        var email = QueuedEmail(
            requestID: requestID,
            messageID: composer.makeMessageID(requestID: requestID),
            createdAt: now,
            toEmail: fields.toEmail,
            cc: fields.cc,
            bcc: fields.bcc,
            replyTo: fields.replyTo,
            subject: content.subject,
            body: content.body,
            htmlBody: content.html,
            format: content.format,
            priority: fields.priority,
            templateName: fields.templateName,
            submittedBy: request.remoteUser
        )
        if !fields.displayNames.isEmpty { email.displayNames = fields.displayNames }
        if let sendAt = fields.sendAt {
            email.sendAt = sendAt
            email.nextAttemptAt = sendAt  // the index holds it back until then
        }
        if !fields.tags.isEmpty { email.tags = fields.tags }
        do {
            try queue.enqueue(email)
        } catch let error as SystemError {
            throw HTTPError.storage(error, logger: logger)
        } catch let error as QueueError {
            throw HTTPError.storage(error, logger: logger)
        }
        var log = logger
        log[metadataKey: "request_id"] = "\(requestID)"
        log.info("queued", metadata: ["user": "\(request.remoteUser ?? "-")", "priority": "\(fields.priority)"])
        return Response.json(
            Accepted(
                request_id: requestID,
                message: "Email queued successfully",
                status: fields.sendAt == nil ? "queued" : "scheduled",
                timestamp: Timestamp.iso8601(now)
            )
        )
    }

    /// Subject, text, HTML and format: rendered from the template, or taken from the raw
    /// fields. `multipart` without `html_body` treats `body` as text, as its name says, and
    /// derives the HTML part from it (escaped, paragraphs and line breaks kept).
    /// - Throws: `HTTPError` 400 for template errors.
    static func content(
        of fields: EmailRequest,
        templates: TemplateStore
    )
        throws -> (subject: String, body: String, html: String?, format: EmailFormat)
    {
        guard let name = fields.templateName else {
            let subject = fields.subject ?? ""
            let body = fields.body ?? ""
            if fields.format == .multipart, fields.htmlBody == nil {
                return (subject, body, HTMLText.fromPlainText(body), .multipart)
            }
            return (subject, body, fields.htmlBody, fields.format)
        }
        do {
            let rendered = try templates.render(name, variables: fields.templateVars)
            return (rendered.subject, rendered.text, rendered.html, rendered.html == nil ? .plain : .multipart)
        } catch let error as TemplateError {
            throw HTTPError(400, error.description)
        }
    }
}
