import CCurl
import Composition
import Delivery
import Foundation
import MailModel

#if canImport(Glibc)
import Glibc
#endif

/// SMTP delivery (RFC 5321) over libcurl's smtp:// and smtps:// support.
///
/// One instance per thread: its easy handle keeps the connection open between messages
/// (libcurl's connection cache, which checks a cached connection is alive before reusing
/// it), and `close()` ends it with QUIT via curl_easy_cleanup(3). After any failed send the
/// handle is dropped, so the next send opens a fresh connection: a session that timed out
/// or broke is never written to again. A send that fails on a reused connection before the
/// relay said anything (it dropped the connection while idle) is tried once more, fresh.
///
/// Every recipient the relay accepts gets the message (CURLOPT_MAIL_RCPT_ALLOWFAILS): one
/// refused recipient does not cost the others, and each one's reply is returned.
///
/// Credentials never travel in clear: TLS is required in every mode but `none` (implicit on
/// port 465, else STARTTLS), and with a password set, a relay that does not offer AUTH
/// ends the session before MAIL FROM (libcurl would otherwise send without AUTH).
public final class SMTPTransport: Transport {
    public let settings: SMTPSettings
    private var handle: UnsafeMutableRawPointer?
    private let session: SessionLog
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))

    /// curl_global_init(3) must run once before any thread makes a handle.
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init(settings: SMTPSettings) {
        Self.globalInit
        self.settings = settings
        session = SessionLog(requiresAuthentication: settings.password != nil)
    }

    deinit {
        close()
        errorBuffer.deallocate()
    }

    public func close() {
        if let handle { curl_easy_cleanup(handle) }
        handle = nil
    }

    public func send(_ message: OutgoingMessage) throws(DeliveryError) -> [RecipientReply] {
        var recipients: UnsafeMutablePointer<curl_slist>?
        for address in message.recipients { recipients = curl_slist_append(recipients, "<\(address)>") }
        defer { curl_slist_free_all(recipients) }

        let upload = Upload(message.data)
        var code = perform(message, recipients: recipients, upload: upload)
        // A cached connection the relay closed while idle: nothing was said, try a new one.
        if code != CURLE_OK, session.lastReply == nil, session.reusedConnection,
            Self.networkErrors.contains(code.rawValue)
        {
            close()
            upload.offset = 0
            code = perform(message, recipients: recipients, upload: upload)
        }
        let replies = session.recipientReplies(for: message.recipients)
        if code == CURLE_OK, replies.contains(where: { $0.status == .accepted }) { return replies }
        // Whatever happened to the session, it is not used again.
        let error = classify(code, replies: replies)
        close()
        throw error
    }

    public func probe() throws(DeliveryError) {
        session.reset()
        errorBuffer[0] = 0
        guard let handle = handle ?? curl_easy_init() else {
            throw DeliveryError(.transient, scope: .sender, "curl_easy_init failed")
        }
        self.handle = handle
        let unmanagedSession = Unmanaged.passUnretained(session).toOpaque()
        let code = withExtendedLifetime(session) { () -> CURLcode in
            let options =
                sessionOptions(handle, session: unmanagedSession) + [
                    ccurl_setopt_long(handle, CURLOPT_UPLOAD, 0),
                    ccurl_setopt_slist(handle, CURLOPT_MAIL_RCPT, nil),
                    ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "NOOP"),
                    ccurl_setopt_write_function(handle, Self.discard),
                ]
            if let failed = options.first(where: { $0 != CURLE_OK }) { return failed }
            return curl_easy_perform(handle)
        }
        _ = ccurl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, nil)
        if code == CURLE_OK { return }
        var error = classify(code, replies: [])
        error.scope = .sender  // whatever the relay said to NOOP, no email was involved
        close()
        throw error
    }

    /// CURLOPT_WRITEFUNCTION for the probe: the NOOP reply is read from the debug callback.
    private static let discard: curl_write_callback = { _, size, count, _ in size * count }

    /// One transfer on the current handle (a new one if there is none).
    private func perform(
        _ message: OutgoingMessage,
        recipients: UnsafeMutablePointer<curl_slist>?,
        upload: Upload
    ) -> CURLcode {
        session.reset()
        errorBuffer[0] = 0
        guard let handle = handle ?? curl_easy_init() else { return CURLE_FAILED_INIT }
        self.handle = handle
        let unmanagedUpload = Unmanaged.passUnretained(upload).toOpaque()
        let unmanagedSession = Unmanaged.passUnretained(session).toOpaque()
        let code = withExtendedLifetime((upload, session)) { () -> CURLcode in
            if let failed = configure(
                handle,
                message: message,
                recipients: recipients,
                upload: unmanagedUpload,
                session: unmanagedSession
            ) {
                return failed
            }
            return curl_easy_perform(handle)
        }
        var connects = 0
        session.reusedConnection =
            ccurl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects == 0
        return code
    }

    /// Failures that mean the connection broke, not that the server refused.
    private static let networkErrors: Set<UInt32> = [
        CURLE_SEND_ERROR.rawValue, CURLE_RECV_ERROR.rawValue, CURLE_GOT_NOTHING.rawValue,
    ].reduce(into: []) { $0.insert($1) }

    // MARK: - Options

    private var url: String {
        let host = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
        let scheme = settings.implicitTLS ? "smtps" : "smtp"
        return "\(scheme)://\(host):\(settings.port)/\(Self.heloName)"
    }

    /// TLS is required unless `SMTP_TLS=none`: STARTTLS must be offered and must succeed.
    private var useSSL: curl_usessl {
        settings.tls == .none ? CURLUSESSL_NONE : CURLUSESSL_ALL
    }

    /// The EHLO name: this host's name.
    private static let heloName: String = {
        let host = ProcessInfo.processInfo.hostName
        return host.isEmpty ? "localhost" : host
    }()

    /// Sets every option for one send; returns the first failing option's code.
    private func configure(
        _ handle: UnsafeMutableRawPointer,
        message: OutgoingMessage,
        recipients: UnsafeMutablePointer<curl_slist>?,
        upload: UnsafeMutableRawPointer,
        session: UnsafeMutableRawPointer
    ) -> CURLcode? {
        let codes =
            sessionOptions(handle, session: session) + [
                ccurl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(message.envelopeFrom)>"),
                ccurl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients),
                ccurl_setopt_long(handle, ccurl_mail_rcpt_allowfails, 1),
                ccurl_setopt_long(handle, CURLOPT_UPLOAD, 1),
                ccurl_setopt_long(handle, CURLOPT_INFILESIZE_LARGE, message.data.count),
                ccurl_setopt_read_function(handle, Upload.read),
                ccurl_setopt_pointer(handle, CURLOPT_READDATA, upload),
            ]
        return codes.first { $0 != CURLE_OK }
    }

    /// The options a send and a probe share: where and how to connect (TLS, timeouts,
    /// verification, credentials) and the session log's callbacks. Returns each one's code.
    private func sessionOptions(_ handle: UnsafeMutableRawPointer, session: UnsafeMutableRawPointer) -> [CURLcode] {
        let s = settings
        var codes: [CURLcode] = [
            ccurl_setopt_string(handle, CURLOPT_URL, url),
            ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1),
            ccurl_setopt_long(handle, CURLOPT_USE_SSL, Int(useSSL.rawValue)),
            ccurl_setopt_long(handle, CURLOPT_VERBOSE, 1),  // feeds the debug callback
            ccurl_setopt_debug_function(handle, SessionLog.record),
            ccurl_setopt_pointer(handle, CURLOPT_DEBUGDATA, session),
            ccurl_setopt_prereq_function(handle, SessionLog.checkSession),
            ccurl_setopt_pointer(handle, CURLOPT_PREREQDATA, session),
            ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer),
            ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, s.connectTimeout),
            ccurl_setopt_long(handle, CURLOPT_TIMEOUT, s.timeout),
            ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, s.verifyCertificate ? 1 : 0),
            ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, s.verifyCertificate ? 2 : 0),
        ]
        if let caFile = s.caFile { codes.append(ccurl_setopt_string(handle, CURLOPT_CAINFO, caFile)) }
        if let username = s.username, let password = s.password {
            codes.append(ccurl_setopt_string(handle, CURLOPT_USERNAME, username))
            codes.append(ccurl_setopt_string(handle, CURLOPT_PASSWORD, password))
        }
        return codes
    }

    // MARK: - Failure classes

    /// Reply codes that are the sender's setup wherever they come, even to MAIL FROM: the
    /// AUTH failures of RFC 4954 §6 (530 authentication required, 534, 535, 538). Any other
    /// refusal before the transaction (the greeting, EHLO, STARTTLS, AUTH: a 421 "too many
    /// connections" at greeting, a 454) is the sender's too; within it (MAIL, RCPT, DATA),
    /// a 421 or 454 is about this email and counts against its retries, so one email a relay
    /// keeps refusing cannot hold the whole pool.
    static let setupReplyCodes: Set<Int> = [530, 534, 535, 538]

    private func classify(_ code: CURLcode, replies: [RecipientReply]) -> DeliveryError {
        let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
        let saw = session.mailAnswered
        if let reason = session.abortReason {
            return DeliveryError(.transient, scope: .sender, reason)
        }
        if code == CURLE_USE_SSL_FAILED {
            return DeliveryError(
                .transient,
                scope: .sender,
                "the relay did not offer STARTTLS, which SMTP_TLS=\(settings.tls) requires (\(detail))"
            )
        }
        if let failure = session.failure {
            let message = "\(failure.reply) (\(detail))"
            let setup = ["", "EHLO", "HELO", "STARTTLS", "AUTH"].contains(failure.command)
            if setup || Self.setupReplyCodes.contains(failure.code) || code == CURLE_LOGIN_DENIED {
                return DeliveryError(.transient, scope: .sender, replyCode: failure.code, relaySaw: saw, message)
            }
            if DeliveryError.isRateLimit(code: failure.code, reply: failure.reply) {
                // Not this email's fault: the pool slows down, the email keeps its retries.
                var error = DeliveryError(.transient, scope: .sender, replyCode: failure.code, relaySaw: saw, message)
                error.rateLimited = true
                return error
            }
            let kind: DeliveryError.Kind = (500...599).contains(failure.code) ? .permanent : .transient
            return DeliveryError(kind, replyCode: failure.code, relaySaw: saw, recipients: replies, message)
        }
        if !replies.isEmpty, !session.anyRecipientAccepted,
            replies.allSatisfy({ $0.status == .deferred && DeliveryError.isRateLimit(code: $0.code, reply: $0.reply) })
        {
            // Every recipient refused because the relay wants fewer messages a second.
            var error = DeliveryError(
                .transient,
                scope: .sender,
                replyCode: replies.last?.code,
                relaySaw: true,
                recipients: replies,
                "the relay asks to slow down: " + (replies.last?.reply ?? "")
            )
            error.rateLimited = true
            return error
        }
        if !replies.isEmpty, !session.anyRecipientAccepted {
            // Every recipient refused: the email's failure; permanent only if every one was.
            let permanent = replies.allSatisfy { $0.status == .refused }
            let last = replies.last { $0.code != nil }
            return DeliveryError(
                permanent ? .permanent : .transient,
                replyCode: last?.code,
                relaySaw: true,
                recipients: replies,
                "no recipient accepted: "
                    + replies.map { "\($0.address): \($0.reply ?? "no answer")" }.joined(separator: "; ")
            )
        }
        if saw {
            // The session broke or timed out after the relay took up this email.
            return DeliveryError(.transient, relaySaw: true, recipients: replies, "\(detail) during the transaction")
        }
        // No refusal from the server: network, TLS, a timeout or a dropped connection.
        return DeliveryError(.transient, scope: .sender, "\(detail)")
    }
}

/// The message bytes handed to libcurl's read callback (CURLOPT_READFUNCTION).
private final class Upload {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static let read: curl_read_callback = { buffer, size, count, userdata in
        guard let buffer, let userdata else { return 0 }
        let upload = Unmanaged<Upload>.fromOpaque(userdata).takeUnretainedValue()
        let n = min(size * count, upload.bytes.count - upload.offset)
        upload.bytes.withUnsafeBytes { source in
            UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + upload.offset, byteCount: n)
        }
        upload.offset += n
        return n
    }
}

/// What one transfer's session said, from libcurl's debug callback (CURLOPT_DEBUGFUNCTION):
/// the first refusal of a command other than RCPT and what it answered, each RCPT's reply,
/// the reply to the end of the data, and whether the relay authenticated us.
private final class SessionLog {
    struct Failure {
        let code: Int
        let reply: String
        /// MAIL, DATA, AUTH, EHLO, STARTTLS, ... ("" for the greeting).
        let command: String
    }

    let requiresAuthentication: Bool
    var failure: Failure?
    var lastReply: String?
    var reusedConnection = false
    /// Whether the relay answered this transfer's MAIL FROM.
    var mailAnswered = false
    /// Why `checkSession` ended the transfer.
    var abortReason: String?
    private var lastCommand = ""
    /// Whether this transfer opened its connection (the relay greeted it).
    private var greeted = false
    private var authenticated = false
    private var rcptAddresses: [String] = []
    private var rcptReplies: [(code: Int, reply: String)] = []
    private var dataStarted = false
    private var dataReply: (code: Int, reply: String)?

    init(requiresAuthentication: Bool) {
        self.requiresAuthentication = requiresAuthentication
    }

    func reset() {
        failure = nil
        lastReply = nil
        reusedConnection = false
        mailAnswered = false
        abortReason = nil
        lastCommand = ""
        greeted = false
        authenticated = false
        rcptAddresses = []
        rcptReplies = []
        dataStarted = false
        dataReply = nil
    }

    /// Whether the relay accepted any RCPT in this transfer.
    var anyRecipientAccepted: Bool {
        rcptReplies.contains { (200...299).contains($0.code) }
    }

    /// Each envelope recipient's outcome: its RCPT reply, and for the accepted ones the
    /// reply to the end of the data (none heard: deferred). Recipients the session never
    /// reached are left out.
    func recipientReplies(for envelope: [String]) -> [RecipientReply] {
        zip(envelope, rcptReplies).map { address, rcpt in
            guard (200...299).contains(rcpt.code) else {
                return RecipientReply(
                    address: address,
                    status: rcpt.code >= 500 ? .refused : .deferred,
                    code: rcpt.code,
                    reply: rcpt.reply
                )
            }
            guard let dataReply else {
                return RecipientReply(address: address, status: .deferred, reply: "no answer to the end of the data")
            }
            let status: RecipientReply.Status =
                (200...299).contains(dataReply.code) ? .accepted : dataReply.code >= 500 ? .refused : .deferred
            return RecipientReply(address: address, status: status, code: dataReply.code, reply: dataReply.reply)
        }
    }

    static let record: curl_debug_callback = { _, type, data, size, userdata in
        guard let data, let userdata else { return 0 }
        let log = Unmanaged<SessionLog>.fromOpaque(userdata).takeUnretainedValue()
        guard type == CURLINFO_HEADER_IN || type == CURLINFO_HEADER_OUT else { return 0 }
        // One line a call, with its CRLF: cut on the bytes (Foundation's trimming of a
        // String, once per SMTP line, was a visible part of a delivery's CPU).
        var length = size
        while length > 0, data[length - 1] == 0x0A || data[length - 1] == 0x0D { length -= 1 }
        let text = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
        if type == CURLINFO_HEADER_IN { log.heard(text) } else { log.said(text) }
        return 0
    }

    private func heard(_ text: String) {
        lastReply = text
        let utf8 = text.utf8
        let code = Int(text.prefix(3)) ?? 0
        // A multi-line reply's last line has a space after the code (RFC 5321 §4.2.1).
        let final = utf8.count < 4 || utf8[utf8.index(utf8.startIndex, offsetBy: 3)] == UInt8(ascii: " ")
        if lastCommand.isEmpty, code == 220 { greeted = true }
        guard final else { return }
        switch lastCommand {
        case "MAIL": mailAnswered = true
        case "AUTH": if code == 235 { authenticated = true }
        case "RCPT":
            if rcptReplies.count < rcptAddresses.count { rcptReplies.append((code, text)) }
            // A refused recipient is not the transaction's failure; a closing session is.
            guard code == 421 else { return }
        case "DATA":
            if dataStarted {
                dataReply = (code, text)
            } else if code == 354 {
                dataStarted = true
            }
        default: break
        }
        if failure == nil, code >= 400 { failure = Failure(code: code, reply: text, command: lastCommand) }
    }

    private func said(_ text: String) {
        // Only the verb is kept, and RCPT's address: AUTH lines carry credentials, and the
        // lines that answer an AUTH challenge (no verb) are not kept at all.
        let verb = String(text.prefix { $0 != " " }).uppercased()
        guard Self.verbs.contains(verb) else { return }
        lastCommand = verb
        if lastCommand == "RCPT", let open = text.firstIndex(of: "<"), let close = text.lastIndex(of: ">"),
            open < close
        {
            rcptAddresses.append(String(text[text.index(after: open)..<close]))
        }
    }

    static let verbs: Set<String> = [
        "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "QUIT", "NOOP",
    ]

    /// CURLOPT_PREREQFUNCTION: the session is set up and MAIL FROM is next. With a password
    /// set, a new session that did not authenticate (the relay offered no AUTH, or it was
    /// stripped from its EHLO answer) ends here, so nothing is sent unauthenticated.
    static let checkSession: curl_prereq_callback = { userdata, _, _, _, _ in
        guard let userdata else { return CURL_PREREQFUNC_OK }
        let log = Unmanaged<SessionLog>.fromOpaque(userdata).takeUnretainedValue()
        if log.requiresAuthentication, log.greeted, !log.authenticated {
            log.abortReason = "the relay did not offer AUTH, and PASSWORD is set: not sending unauthenticated"
            return CURL_PREREQFUNC_ABORT
        }
        return CURL_PREREQFUNC_OK
    }
}
