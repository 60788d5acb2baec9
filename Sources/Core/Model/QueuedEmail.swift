import Foundation

/// One accepted email as it is stored in its queue file (`data/queue/batch_*.json`).
///
/// It is stored rendered: templates are applied by the responder before enqueueing, so the
/// worker needs nothing but this file to compose and send the message. `messageID` and
/// `createdAt` are fixed at acceptance, so a retried or re-delivered email keeps its
/// Message-ID and Date (RFC 5322 §3.6.1, §3.6.4) and receivers can recognise duplicates.
///
/// JSON keys are snake_case, matching the seed's queue files and API fields.
public struct QueuedEmail: Codable, Equatable, Sendable {
    /// The API's `request_id`: a UUIDv7 string, from which the file name is derived.
    public var requestID: String
    /// `Message-ID` header value including angle brackets, e.g. `<0190…@example.com>`.
    public var messageID: String
    /// When the responder accepted the email; becomes the `Date` header.
    public var createdAt: Date
    /// When an operator put it back from the dead letters (by hand, see the README):
    /// `MAX_QUEUE_LIFETIME` then counts from here, not from `createdAt`.
    public var requeuedAt: Date?
    public var toEmail: String
    public var cc: [String]
    /// Blind copies: envelope recipients only, never written as a header.
    public var bcc: [String]
    public var replyTo: String?
    public var subject: String
    /// The text body (for `format == .html`, the HTML itself).
    public var body: String
    /// The HTML part for `format == .multipart`.
    public var htmlBody: String?
    public var format: EmailFormat
    /// 1 high, 2 normal, 3 low.
    public var priority: Int
    public var templateName: String?
    /// The user nginx authenticated (`REMOTE_USER`), if any.
    public var submittedBy: String?
    /// Delivery attempts that failed so far.
    public var retryCount: Int
    /// Not to be attempted before this time (backoff after a transient failure).
    public var nextAttemptAt: Date?
    public var lastError: String?
    /// Every attempt since one failed, oldest first (the latest `DeliveryAttempt.keptAttempts`);
    /// a first attempt that delivers to everyone leaves it empty (the file moves as it is).
    public var attempts: [DeliveryAttempt]
    /// What is known of each envelope recipient once an attempt did not go to all of them
    /// (one refused, or deferred while others were accepted); nil while none has an outcome.
    /// Later attempts go only to the recipients still pending (`pendingRecipients`).
    public var recipients: [RecipientOutcome]?
    /// Display names for the To, Cc and Reply-To headers, by address (name-addr input,
    /// `John Doe <john@example.com>`); absent when none was given.
    public var displayNames: [String: String]?
    /// When the client asked for it to be sent (`send_at`), if it did: it is not attempted
    /// before (`nextAttemptAt` starts there) and `MAX_QUEUE_LIFETIME` counts from there.
    public var sendAt: Date?
    /// The client's labels (`tags`), kept with the email and answered by the lookup.
    public var tags: [EmailTag]?
    /// Files carried by the email, inline parts among them, in the client's order.
    public var attachments: [Attachment]?
    /// Headers the client added, written after the composer's own, sorted by name.
    public var headers: [CustomHeader]?
    /// Attempts recorded so far, all of them (`attempts` keeps the last 100): numbers the
    /// email's events, so two events never share an id. Absent in older files.
    public var attemptTotal: Int?

    /// The number the next event of this email gets: past every attempt recorded.
    public var eventSequence: Int { max(attemptTotal ?? 0, attempts.count) }

    /// When `MAX_QUEUE_LIFETIME` starts: acceptance, a scheduled time, or an operator's
    /// requeue, whichever is latest.
    public var lifetimeStart: Date {
        max(createdAt, requeuedAt ?? createdAt, sendAt ?? createdAt)
    }

    public init(
        requestID: String,
        messageID: String,
        createdAt: Date,
        toEmail: String,
        cc: [String] = [],
        bcc: [String] = [],
        replyTo: String? = nil,
        subject: String,
        body: String,
        htmlBody: String? = nil,
        format: EmailFormat = .plain,
        priority: Int = 2,
        templateName: String? = nil,
        submittedBy: String? = nil
    ) {
        self.requestID = requestID
        self.messageID = messageID
        self.createdAt = createdAt
        self.toEmail = toEmail
        self.cc = cc
        self.bcc = bcc
        self.replyTo = replyTo
        self.subject = subject
        self.body = body
        self.htmlBody = htmlBody
        self.format = format
        self.priority = priority
        self.templateName = templateName
        self.submittedBy = submittedBy
        self.retryCount = 0
        self.nextAttemptAt = nil
        self.lastError = nil
        self.attempts = []
        self.recipients = nil
        self.displayNames = nil
        self.sendAt = nil
        self.tags = nil
        self.attachments = nil
        self.headers = nil
        self.attemptTotal = nil
    }

    /// The SMTP envelope's recipients: To, Cc and Bcc in that order, each mailbox once
    /// (`Self.mailboxKey`: the domain compared without regard to case, the local part as is,
    /// since RFC 5321 §2.4 lets a server tell `John` from `john`).
    public var envelopeRecipients: [String] {
        if cc.isEmpty, bcc.isEmpty { return [toEmail] }  // most transactional mail
        var seen: Set<String> = []
        return ([toEmail] + cc + bcc).filter { seen.insert(Self.mailboxKey($0)).inserted }
    }

    /// An address as it identifies a mailbox: the local part exact, the domain lowercased.
    public static func mailboxKey(_ address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return address }
        return address[..<at] + address[at...].lowercased()
    }

    /// The envelope recipients that have neither received the email nor been refused it for
    /// good: the next attempt's envelope.
    public var pendingRecipients: [String] {
        guard let recipients else { return envelopeRecipients }
        let done = Set(recipients.filter { $0.state != .deferred }.map { Self.mailboxKey($0.address) })
        return envelopeRecipients.filter { !done.contains(Self.mailboxKey($0)) }
    }

    /// Why this entry cannot be sent as it is, or nil. The responder checks every field
    /// before enqueueing; this checks again what a queue file written or edited by hand
    /// could smuggle into the SMTP envelope or a header (a CR or LF in an address reached
    /// `RCPT TO` before).
    public var deliveryProblem: String? {
        let addresses =
            [("to_email", toEmail)] + cc.map { ("cc", $0) } + bcc.map { ("bcc", $0) }
            + (replyTo.map { [("reply_to", $0)] } ?? [])
        for (field, address) in addresses {
            if let problem = Mailbox.problem(address) { return "\(field) \"\(address)\": \(problem)" }
        }
        for (field, text) in [("message_id", messageID), ("subject", subject)] {
            if let problem = HeaderText.controlCharacterProblem(text) { return "\(field) \(problem)" }
        }
        for (address, name) in displayNames ?? [:] {
            if let problem = HeaderText.controlCharacterProblem(name) {
                return "display name for \(address) \(problem)"
            }
        }
        if !(1...3).contains(priority) { return "priority \(priority) is not 1, 2 or 3" }
        if !messageID.hasPrefix("<") || !messageID.hasSuffix(">") || messageID.utf8.count > 250
            || !messageID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            return "message_id must be <...> in printable ASCII, at most 250 characters"
        }
        let custom = headers ?? []
        if custom.count > CustomHeader.maxCount { return "more than \(CustomHeader.maxCount) custom headers" }
        for header in custom {
            let problem =
                CustomHeader.nameProblem(header.name) ?? CustomHeader.valueProblem(header.value, name: header.name)
            if let problem { return "header \(header.name): \(problem)" }
        }
        if let problem = CustomHeader.setProblem(custom) { return "headers: \(problem)" }
        if (attachments ?? []).count > Attachment.maxCount { return "more than \(Attachment.maxCount) attachments" }
        for attachment in attachments ?? [] {
            let problem =
                Attachment.filenameProblem(attachment.filename)
                ?? Self.contentTypeProblem(attachment.contentType)
                ?? attachment.contentID.flatMap(Attachment.contentIDProblem)
                ?? (Base64Text.canonical(attachment.content) == attachment.content ? nil : "content is not base64")
            if let problem { return "attachment \(attachment.filename): \(problem)" }
        }
        return nil
    }

    /// Why a stored `content_type` cannot be written as it is: not a media type, or not in the
    /// form the API stores (lowercased, parameters joined by "; ", ASCII only).
    static func contentTypeProblem(_ type: String) -> String? {
        switch MediaType.checked(type) {
        case .failure(let problem): "content_type \(problem.reason)"
        case .success(let written): written == type ? nil : "content_type \(type) is not as the API writes it"
        }
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id"
        case messageID = "message_id"
        case createdAt = "created_at"
        case requeuedAt = "requeued_at"
        case toEmail = "to_email"
        case cc, bcc
        case replyTo = "reply_to"
        case subject, body
        case htmlBody = "html_body"
        case format, priority
        case templateName = "template_name"
        case submittedBy = "submitted_by"
        case retryCount = "retry_count"
        case nextAttemptAt = "next_attempt_at"
        case lastError = "last_error"
        case attempts, recipients
        case displayNames = "display_names"
        case sendAt = "send_at"
        case tags, attachments, headers
        case attemptTotal = "attempt_total"
    }
}

/// A client's label on an email (`{"name": ..., "value": ...}`), as Resend's tags: ASCII
/// letters, digits, `_` and `-`, at most `maxLength` characters each.
public struct EmailTag: Codable, Equatable, Sendable {
    public var name: String
    public var value: String

    /// Most tags on one email.
    public static let maxCount = 10
    /// Longest name or value, in characters.
    public static let maxLength = 256

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Why `text` cannot be a tag's name or value, or nil.
    public static func problem(_ text: String) -> String? {
        if text.isEmpty { return "must not be empty" }
        if text.count > maxLength { return "is longer than \(maxLength) characters" }
        let allowed = text.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "_" || scalar == "-")
        }
        return allowed ? nil : "may hold only ASCII letters, digits, '_' and '-'"
    }
}

/// Where one envelope recipient stands: kept in the queue file once recipients differ.
public struct RecipientOutcome: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable {
        /// The relay accepted the email for this recipient.
        case sent
        /// Refused for good (a 5xx): not tried again.
        case failed
        /// Refused for now (a 4xx, or no answer): tried again with the email's retries.
        case deferred
        /// On the suppression list when the email was accepted: left out of the envelope.
        case suppressed
    }

    public var address: String
    public var state: State
    /// The relay's reply code and line that decided the state, when it gave one.
    public var code: Int?
    public var reply: String?
    /// When the state was last set.
    public var at: Date

    public init(address: String, state: State, code: Int? = nil, reply: String? = nil, at: Date) {
        self.address = address
        self.state = state
        self.code = code
        self.reply = reply
        self.at = at
    }
}

/// The body structure requested by the client (`format` in the API).
public enum EmailFormat: String, Codable, Sendable, CaseIterable {
    /// One `text/plain` part.
    case plain
    /// One `text/html` part.
    case html
    /// `multipart/alternative`: text first, then HTML (RFC 2046 §5.1.4).
    case multipart
}

/// One delivery attempt, kept in the queue file and in the dead letter once an attempt failed. The fields after `error` are absent in files written before they existed.
public struct DeliveryAttempt: Codable, Equatable, Sendable {
    public var at: Date
    /// What went wrong, with the relay's reply when there was one.
    public var error: String
    /// Whose failure it was: the sender's (not counted against `MAX_RETRIES`) or the email's.
    public var scope: DeliveryError.Scope?
    /// The SMTP reply code that decided the attempt, when there was one.
    public var code: Int?
    /// Whether the relay answered any command of this email's transaction: false when the
    /// attempt never reached it (unreachable, a dead session), so it cannot have been delivered.
    public var relaySaw: Bool?
    /// Whether the attempt counted against the email's retries.
    public var counted: Bool?
    /// The relay's answer for each recipient tried, when it got that far.
    public var recipients: [RecipientReply]?

    /// How many attempts a queue file keeps: during a long relay outage the probes would
    /// otherwise grow one email's file without bound.
    public static let keptAttempts = 100

    public init(
        at: Date,
        error: String,
        scope: DeliveryError.Scope? = nil,
        code: Int? = nil,
        relaySaw: Bool? = nil,
        counted: Bool? = nil,
        recipients: [RecipientReply]? = nil
    ) {
        self.at = at
        self.error = error
        self.scope = scope
        self.code = code
        self.relaySaw = relaySaw
        self.counted = counted
        self.recipients = recipients
    }

    enum CodingKeys: String, CodingKey {
        case at, error, scope, code
        case relaySaw = "relay_saw"
        case counted, recipients
    }
}
