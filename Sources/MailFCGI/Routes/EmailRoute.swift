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
    let queue: any QueueStore
    let composer: MessageComposer
    let templates: TemplateStore
    /// `MAX_SCHEDULE_DAYS` and `MAX_ATTACHMENTS`.
    var limits = EmailRequest.Limits()
    /// `MAX_MESSAGE_BYTES`: the largest composed message accepted.
    var maxMessageBytes = 10 << 20
    /// Counts what is stored, for `GET /metrics`.
    var metrics = ResponderMetrics()

    struct Accepted: Encodable {
        let request_id: String
        let message: String
        let status: String
        let timestamp: String
    }

    /// Validates, then stores the email; with an `Idempotency-Key`, at most once per key
    /// (`IdempotencyKeys`): a repeat of the same request answers the first answer again with
    /// `Idempotent-Replayed: true`, the same key with another body is 422
    /// (`idempotency_key_reused`), and one arriving while the first is handled is 409.
    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        let now = Date()
        var fields = try EmailRequest.parse(request, now: now, limits: limits)
        let content = try Self.content(of: fields, templates: templates)
        try checkSize(fields, content, now: now)
        fields.suppressed = try suppressedRecipients(fields, now: now, logger: logger)
        let keyed = try IdempotentRequest.start(
            request,
            keys: queue.idempotencyKeys,
            kind: "",
            count: 1,
            now: now
        )
        switch keyed {
        case nil:
            // A new id when another email of the same millisecond has the same file name.
            for _ in 1...3 {
                do {
                    return try store(fields, content, requestID: RequestID.make(at: now), now: now, request, logger)
                } catch QueueError.nameTaken {
                    continue
                }
            }
            throw HTTPError(503, "Could not find a free request id; retry", headers: [("Retry-After", "1")])
        case .replay(let response):
            return response
        case .proceed(let reservation, let resumed):
            defer { reservation.release() }
            // A lookup that fails is not "not stored": storing again could make a second email.
            let earlier: EmailRecord?
            do {
                earlier = resumed ? try queue.lookup(requestID: reservation.requestID) : nil
            } catch {
                throw HTTPError.storage(error, logger: logger)
            }
            if let stored = earlier {
                // Stored by a request that crashed (or failed) before it recorded its answer.
                let answer = Response.json(Self.accepted(stored.email)).body
                try? reservation.finish(answer: answer)
                return IdempotentRequest.replayed(answer)
            }
            let response: Response
            do {
                response = try store(fields, content, requestID: reservation.requestID, now: now, request, logger)
            } catch QueueError.nameTaken {
                // Another email of the same millisecond has this id's file name (odds 2^-32).
                throw HTTPError(503, "The request id reserved for this key is taken; use a new Idempotency-Key")
            }
            // If this fails, the email is stored all the same, and a retry finds it by its id.
            do { try reservation.finish(answer: response.body) } catch {
                logger.warning("idempotency answer not recorded", metadata: ["error": "\(error)"])
            }
            return response
        }
    }

    static func accepted(_ email: QueuedEmail) -> Accepted {
        Accepted(
            request_id: email.requestID,
            message: email.sendAt == nil ? "Email queued successfully" : "Email scheduled",
            status: email.sendAt == nil ? "queued" : "scheduled",
            timestamp: Timestamp.iso8601(email.createdAt)
        )
    }

    /// Stores the email under `requestID` and answers for it.
    private func store(
        _ fields: EmailRequest,
        _ content: Content,
        requestID: String,
        now: Date,
        _ request: Request,
        _ logger: Logger
    ) throws -> Response {
        let email = makeEmail(fields, content, requestID: requestID, now: now, user: request.remoteUser)
        do {
            let started = Date()
            try queue.enqueue(email)
            metrics.stored(1, seconds: Date().timeIntervalSince(started))
            metrics.suppressed(fields.suppressed.count)
            if !fields.suppressed.isEmpty { recordSuppressed(email, logger) }
        } catch let error as SystemError {
            throw HTTPError.storage(error, logger: logger)
        } catch QueueError.nameTaken(let id) {
            throw QueueError.nameTaken(id)  // the caller takes a new id, or gives up
        } catch let error as QueueError {
            throw HTTPError.storage(error, logger: logger)
        }
        var log = logger
        log[metadataKey: "request_id"] = "\(requestID)"
        log.info("queued", metadata: ["user": "\(request.remoteUser ?? "-")", "priority": "\(fields.priority)"])
        return Response.json(Self.accepted(email))
    }

    /// - Throws: `HTTPError` 413 naming `MAX_MESSAGE_BYTES` when the message composed from
    /// `fields` and `content` would be larger (`item`: its place in a batch). It is measured,
    /// not composed, so an attachment is not encoded here.
    func checkSize(_ fields: EmailRequest, _ content: Content, now: Date, item: Int? = nil) throws {
        let email = makeEmail(fields, content, requestID: RequestID.make(at: now), now: now, user: nil)
        // Room for the DKIM-Signature mailworkerd may add (mailfcgi does not know whether it
        // signs): what the relay receives stays within the limit too.
        let size = composer.composedSize(email) + Self.signatureAllowance
        guard size > maxMessageBytes else { return }
        let which = item.map { "Email \($0): the" } ?? "The"
        throw HTTPError(
            413,
            "\(which) composed message would be \(size) bytes with room for a DKIM signature, over "
                + "MAX_MESSAGE_BYTES (\(maxMessageBytes) bytes)"
        )
    }

    /// The recipients of `fields` on the suppression list, by address; they are left out of
    /// the envelope and recorded as `suppressed`.
    /// - Throws: `HTTPError` 422 of type `recipient_suppressed` naming each when every
    ///   recipient is suppressed (nothing would be sent); 503/507 when the list cannot be read.
    func suppressedRecipients(_ fields: EmailRequest, now: Date, logger: Logger) throws -> [String: Suppression] {
        var found: [String: Suppression] = [:]
        do {
            for address in fields.recipients {
                if let suppression = try queue.suppressions.suppression(of: address, now: now) {
                    found[address] = suppression
                }
            }
        } catch {
            throw HTTPError.storage(error, logger: logger)
        }
        let everyone = Set(fields.recipients.map(QueuedEmail.mailboxKey))
        guard !found.isEmpty, Set(found.keys.map(QueuedEmail.mailboxKey)) == everyone else { return found }
        metrics.suppressed(found.count)
        throw HTTPError.validation(
            fields.recipients.enumerated().compactMap { index, address in
                guard let suppression = found[address] else { return nil }
                let field = index == 0 ? "to_email" : index <= fields.cc.count ? "cc" : "bcc"
                return FieldError(
                    [.key("body"), .key(field)],
                    "\(address) is on the suppression list (\(suppression.origin.rawValue): \(suppression.reason)); "
                        + "DELETE /suppressions/{address} to send to it again",
                    type: "recipient_suppressed",
                    input: .string(address)
                )
            }
        )
    }

    /// `email.suppressed` for an email stored without its suppressed recipients. After the
    /// store: a crash between the two loses this event, never the email.
    func recordSuppressed(_ email: QueuedEmail, _ logger: Logger) {
        let event = DeliveryEvent(
            type: .suppressed,
            email: email,
            sequence: 0,
            at: email.createdAt,
            recipients: (email.recipients ?? []).filter { $0.state == .suppressed }.map {
                .init(address: $0.address, state: "suppressed", reply: $0.reply)
            }
        )
        EmailLookupRoute.record(event, in: queue, logger)
    }

    /// Bytes kept for a DKIM-Signature header: one made with an 8192-bit RSA key and the
    /// whole `h=` list is under 1.8 KiB.
    static let signatureAllowance = 2048

    /// The email to store for validated `fields` and their rendered `content`.
    func makeEmail(
        _ fields: EmailRequest,
        _ content: Content,
        requestID: String,
        now: Date,
        user: String?
    )
        -> QueuedEmail
    {
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
            submittedBy: user
        )
        if !fields.displayNames.isEmpty { email.displayNames = fields.displayNames }
        if let sendAt = fields.sendAt {
            email.sendAt = sendAt
            email.nextAttemptAt = sendAt  // the index holds it back until then
        }
        if !fields.tags.isEmpty { email.tags = fields.tags }
        if !fields.attachments.isEmpty { email.attachments = fields.attachments }
        if !fields.headers.isEmpty { email.headers = fields.headers }
        if !fields.suppressed.isEmpty {
            // Left out of the envelope: `pendingRecipients` skips every recipient with an outcome.
            email.recipients = fields.suppressed.sorted { $0.key < $1.key }.map { address, suppression in
                RecipientOutcome(address: address, state: .suppressed, reply: suppression.reason, at: now)
            }
        }
        return email
    }

    /// What an email says, rendered: subject, text, HTML, format.
    typealias Content = (subject: String, body: String, html: String?, format: EmailFormat)

    /// Subject, text, HTML and format: rendered from the template, or taken from the raw
    /// fields. `multipart` without `html_body` treats `body` as text, as its name says, and
    /// derives the HTML part from it (escaped, paragraphs and line breaks kept).
    /// - Throws: `HTTPError` 400 for template errors; 422 for inline parts (`content_id`)
    ///   on an email without HTML, which nothing could reference.
    static func content(
        of fields: EmailRequest,
        templates: TemplateStore
    )
        throws -> (subject: String, body: String, html: String?, format: EmailFormat)
    {
        let content = try rendered(fields, templates: templates)
        if content.format == .plain {
            let inline = fields.attachments.enumerated().filter { $0.element.contentID != nil }
            if !inline.isEmpty {
                throw HTTPError.validation(
                    inline.map { index, _ in
                        FieldError(
                            [.key("body"), .key("attachments"), .index(index), .key("content_id")],
                            "An inline part (content_id) needs an HTML body to reference it as cid:",
                            type: "value_error"
                        )
                    }
                )
            }
        }
        return content
    }

    private static func rendered(_ fields: EmailRequest, templates: TemplateStore) throws -> Content {
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
