import FastCGI
import Foundation
import MailModel

/// The body of `POST /email`, validated field by field. Every problem found is reported at
/// once, each with its location, in the FastAPI 422 shape; unknown fields are ignored.
struct EmailRequest {
    var toEmail: String
    /// Nil when a template gives them.
    var subject: String?
    var body: String?
    var templateName: String?
    var templateVars: [String: JSONValue]
    var htmlBody: String?
    var format: EmailFormat
    var priority: Int
    var cc: [String]
    var bcc: [String]
    var replyTo: String?
    /// Display names given in name-addr form (`John Doe <john@example.com>`), by address.
    var displayNames: [String: String]
    /// `send_at` when it is in the future; nil means now.
    var sendAt: Date?
    var tags: [EmailTag]
    /// Files, inline parts among them (`attachments`).
    var attachments: [Attachment]
    /// The client's extra headers (`headers`), sorted by name.
    var headers: [CustomHeader]
    /// Recipients on the suppression list, by address (set by `EmailRoute.suppressedRecipients`).
    var suppressed: [String: Suppression] = [:]

    /// Every envelope recipient: To, Cc, Bcc.
    var recipients: [String] { [toEmail] + cc + bcc }

    /// Most Cc plus Bcc recipients in one email.
    static let maxRecipients = 100

    /// With `template_name`, `subject` and `body` may be left out; if sent, the template's
    /// output replaces them.
    /// - Throws: `HTTPError` 415 (not JSON), 422 (invalid fields or malformed JSON).
    static func parse(_ request: Request, now: Date = Date(), limits: Limits = Limits()) throws -> EmailRequest {
        try requireJSON(request)
        return try parse(document: try JSONValue.parse(request.body), now: now, limits: limits)
    }

    /// The settings that bound one email's fields.
    struct Limits: Sendable {
        /// `MAX_SCHEDULE_DAYS` in seconds.
        var maxScheduleAhead: TimeInterval = 30 * 86_400
        /// `MAX_ATTACHMENTS`.
        var maxAttachments = 20
    }

    /// One email's fields from its JSON (the body of `POST /email`, or one item of a batch).
    /// - Throws: `HTTPError` 422 listing every invalid field at `["body", field]`.
    static func parse(document: JSONValue, now: Date, limits: Limits) throws -> EmailRequest {
        guard case .object(let object) = document else {
            throw HTTPError.validation([
                FieldError(
                    [.key("body")],
                    "Input should be a valid dictionary or object to extract fields from",
                    type: "model_attributes_type",
                    input: document
                )
            ])
        }
        var fields = FieldReader(object)
        let templateName = fields.templateName("template_name")
        let templateVars = fields.object("template_vars")
        // A template request, even one whose name is invalid, needs no subject or body.
        let raw = object["template_name"] == nil || object["template_name"] == .null
        let to = fields.address("to_email", required: true)
        let subject = fields.headerText("subject", required: raw, maxLength: HeaderText.maxSubject)
        let body = fields.string("body", required: raw)
        let htmlBody = fields.string("html_body", required: false)
        let format = fields.choice("format", default: EmailFormat.plain)
        let priority = fields.int("priority", default: 2, range: 1...3)
        let cc = fields.addressList("cc")
        let bcc = fields.addressList("bcc")
        let replyTo = fields.address("reply_to", required: false)
        let sendAt = fields.scheduledTime("send_at", now: now, maxAhead: limits.maxScheduleAhead)
        let tags = fields.tags("tags")
        let attachments = fields.attachments("attachments", maxCount: limits.maxAttachments)
        let headers = fields.customHeaders("headers")
        var displayNames: [String: String] = [:]
        for mailbox in [to, replyTo].compactMap({ $0 }) + cc {  // Bcc never reaches a header
            if let name = mailbox.displayName { displayNames[mailbox.address] = name }
        }
        if htmlBody != nil, format != .multipart {
            fields.errors.append(
                .body(
                    "html_body",
                    "html_body is only used with format 'multipart'",
                    type: "value_error",
                    input: object["html_body"]
                )
            )
        }
        if cc.count + bcc.count > maxRecipients {
            fields.errors.append(
                .body("cc", "at most \(maxRecipients) Cc and Bcc recipients together", type: "too_long")
            )
        }
        guard fields.errors.isEmpty, let to else {
            throw HTTPError.validation(fields.errors)
        }
        return EmailRequest(
            toEmail: to.address,
            subject: subject,
            body: body,
            templateName: templateName,
            templateVars: templateVars,
            htmlBody: htmlBody,
            format: format,
            priority: priority,
            cc: cc.map(\.address),
            bcc: bcc.map(\.address),
            replyTo: replyTo?.address,
            displayNames: displayNames,
            sendAt: sendAt,
            tags: tags,
            attachments: attachments,
            headers: headers
        )
    }

    /// The body must be UTF-8 JSON as sent: `application/json` or a `+json` type (charset,
    /// if given, utf-8), or no Content-Type at all (read as JSON, as FastAPI does), and no
    /// content coding. - Throws: `HTTPError` 415 naming what was wrong.
    static func requireJSON(_ request: Request) throws {
        let parameters = (request.contentType ?? "").split(separator: ";").map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        let type = parameters.first ?? ""
        guard type.isEmpty || type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json"))
        else {
            throw HTTPError(415, "Content-Type must be application/json")
        }
        for parameter in parameters.dropFirst() where parameter.hasPrefix("charset=") {
            let charset = parameter.dropFirst("charset=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            guard charset == "utf-8" || charset == "utf8" else {
                throw HTTPError(415, "JSON must be UTF-8 (charset=\(charset) given)")
            }
        }
        if let coding = request.contentEncoding, !coding.isEmpty, coding.lowercased() != "identity" {
            throw HTTPError(415, "Content-Encoding \(coding) is not accepted: send the JSON uncompressed")
        }
    }
}
