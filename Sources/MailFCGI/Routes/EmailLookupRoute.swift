import FastCGI
import Foundation
import Logging
import MailModel
import Queue

/// `GET /email/{request_id}` (where an email is, with every attempt) and
/// `DELETE /email/{request_id}` (cancel it while it waits). A user sees only the emails they
/// submitted (nginx's `REMOTE_USER`); with no authenticated user, every email. Someone else's
/// email is answered exactly as an unknown one, 404, so ids cannot be probed.
struct EmailLookupRoute: Sendable {
    /// Records `event`; a failure is logged, never answered (the change it reports is made).
    static func record(_ event: DeliveryEvent, in queue: any QueueStore, _ logger: Logger) {
        do { try queue.events.record(event) } catch {
            logger.error("cannot record the event", metadata: ["event": "\(event.id)", "error": "\(error)"])
        }
    }

    let queue: any QueueStore
    /// Counts cancels, for `GET /metrics`.
    var metrics = ResponderMetrics()

    func get(_ request: Request, _ parameters: [String: String], _ logger: Logger) throws -> Response {
        let record = try find(parameters, for: request)
        return Response.json(EmailView(record))
    }

    /// 200 with the canceled email; 409 with its state when it is being sent or finished.
    func delete(_ request: Request, _ parameters: [String: String], _ logger: Logger) throws -> Response {
        let record = try find(parameters, for: request)  // someone else's: 404 before anything changes
        switch try queue.cancel(requestID: record.email.requestID) {
        case .canceled(let canceled):
            metrics.canceledOne()
            // After the cancel's rename: a crash between the two loses this one event
            // (the email is canceled all the same); see README, Events.
            Self.record(
                DeliveryEvent(
                    type: .canceled,
                    email: canceled.email,
                    sequence: canceled.email.eventSequence + 2,  // after the events of its attempts
                    at: Date(),
                    recipients: canceled.email.pendingRecipients.map { .init(address: $0, state: "canceled") }
                ),
                in: queue,
                logger
            )
            logger.info(
                "canceled",
                metadata: ["request_id": "\(canceled.email.requestID)", "user": "\(request.remoteUser ?? "-")"]
            )
            return Response.json(EmailView(canceled))
        case .notCancelable(let current):
            struct Conflict: Encodable {
                let detail: String
                let state: EmailState
            }
            let detail =
                current.state == .sending
                ? "The email is being sent and can no longer be canceled"
                : "The email is \(current.state.rawValue.replacingOccurrences(of: "_", with: " ")) and can no longer be canceled"
            return Response.json(Conflict(detail: detail, state: current.state), status: 409)
        case .notFound:
            throw Self.notFound
        }
    }

    static let notFound = HTTPError(404, "No email with this request_id")

    /// The email named by the path, if this user may see it.
    /// - Throws: `HTTPError` 422 for an id that is not a UUID, 404 for an unknown or
    ///   someone else's id, 503 when the queue cannot be read.
    private func find(_ parameters: [String: String], for request: Request) throws -> EmailRecord {
        let id = parameters["request_id"] ?? ""
        guard UUID(uuidString: id) != nil else {
            throw HTTPError.validation([
                FieldError(
                    [.key("path"), .key("request_id")],
                    "Input should be a valid UUID",
                    type: "uuid_parsing",
                    input: .string(id)
                )
            ])
        }
        let record: EmailRecord?
        do {
            record = try queue.lookup(requestID: id)
        } catch {
            throw HTTPError(503, "The queue cannot be read right now; retry later", headers: [("Retry-After", "5")])
        }
        guard let record else { throw Self.notFound }
        if let user = request.remoteUser, record.email.submittedBy != user { throw Self.notFound }
        return record
    }
}

/// An email as the lookup answers it. Every key is present (null when unknown), so clients
/// need not tell a missing key from an empty value.
struct EmailView: Encodable {
    let record: EmailRecord

    init(_ record: EmailRecord) {
        self.record = record
    }

    /// One envelope recipient and where it stands.
    struct Recipient: Encodable {
        let address: String
        /// `pending`, `sent`, `failed`, `deferred`, or `canceled`.
        let state: String
        let code: Int?
        let reply: String?
        let at: Date?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(address, forKey: .address)
            try c.encode(state, forKey: .state)
            try c.encode(code, forKey: .code)
            try c.encode(reply, forKey: .reply)
            try c.encode(at, forKey: .at)
        }

        enum CodingKeys: String, CodingKey { case address, state, code, reply, at }
    }

    var recipients: [Recipient] {
        let email = record.email
        let known = Dictionary(
            (email.recipients ?? []).map { (QueuedEmail.mailboxKey($0.address), $0) },
            uniquingKeysWith: { _, last in last }
        )
        return email.envelopeRecipients.map { address in
            if let outcome = known[QueuedEmail.mailboxKey(address)], outcome.state != .deferred || !record.state.isFinal
            {
                return Recipient(
                    address: address,
                    state: outcome.state.rawValue,
                    code: outcome.code,
                    reply: outcome.reply,
                    at: outcome.at
                )
            }
            let state =
                switch record.state {
                case .sent, .partiallySent: "sent"
                case .deadLetter: "failed"
                case .canceled: "canceled"
                case .scheduled, .queued, .deferred, .sending, .held: "pending"
                }
            return Recipient(address: address, state: state, code: nil, reply: nil, at: nil)
        }
    }

    enum CodingKeys: String, CodingKey {
        case request_id, message_id, state, created_at, send_at, next_attempt_at, retry_count, finished_at
        case to_email, cc, bcc, subject, template_name, priority, recipients, tags, submitted_by
        case last_error, attempts, dead_letter
    }

    func encode(to encoder: any Encoder) throws {
        let email = record.email
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(email.requestID, forKey: .request_id)
        try c.encode(email.messageID, forKey: .message_id)
        try c.encode(record.state, forKey: .state)
        try c.encode(email.createdAt, forKey: .created_at)
        try c.encode(email.sendAt, forKey: .send_at)
        let next = record.state.isFinal || record.state == .sending ? nil : email.nextAttemptAt
        try c.encode(next, forKey: .next_attempt_at)
        try c.encode(email.retryCount, forKey: .retry_count)
        try c.encode(record.finishedAt, forKey: .finished_at)
        try c.encode(email.toEmail, forKey: .to_email)
        try c.encode(email.cc, forKey: .cc)
        try c.encode(email.bcc, forKey: .bcc)
        try c.encode(email.subject, forKey: .subject)
        try c.encode(email.templateName, forKey: .template_name)
        try c.encode(email.priority, forKey: .priority)
        try c.encode(recipients, forKey: .recipients)
        try c.encode(email.tags ?? [], forKey: .tags)
        try c.encode(email.submittedBy, forKey: .submitted_by)
        try c.encode(email.lastError, forKey: .last_error)
        try c.encode(email.attempts, forKey: .attempts)
        struct Letter: Encodable {
            let reason: String
            let kind: DeadLetterKind
        }
        try c.encode(record.deadLetter.map { Letter(reason: $0.reason, kind: $0.kind) }, forKey: .dead_letter)
    }
}
