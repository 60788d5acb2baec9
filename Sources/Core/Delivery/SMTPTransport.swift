import CCurl
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// SMTP delivery (RFC 5321) over libcurl's smtp:// and smtps:// support.
///
/// One instance per thread: its easy handle keeps the connection open between messages
/// (libcurl's connection cache, which checks a cached connection is alive before reusing
/// it), and `close()` ends it with QUIT via curl_easy_cleanup(3). A send that fails on a
/// reused connection with a network error (the server dropped it while idle) is tried once
/// more on a fresh connection.
/// Failures are classed from the last reply: 5xx after MAIL FROM, RCPT TO or DATA is
/// permanent; everything else (4xx, network, TLS, AUTH) is transient.
public final class SMTPTransport: Transport {
    public let settings: SMTPSettings
    private var handle: UnsafeMutableRawPointer?
    private let session = SessionLog()
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))

    /// curl_global_init(3) must run once before any thread makes a handle.
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init(settings: SMTPSettings) {
        Self.globalInit
        self.settings = settings
    }

    deinit {
        close()
        errorBuffer.deallocate()
    }

    public func close() {
        if let handle { curl_easy_cleanup(handle) }
        handle = nil
    }

    public func send(_ message: OutgoingMessage) throws(DeliveryError) {
        guard let handle = handle ?? curl_easy_init() else {
            throw DeliveryError(.transient, "curl_easy_init failed")
        }
        self.handle = handle
        var recipients: UnsafeMutablePointer<curl_slist>?
        for address in message.recipients { recipients = curl_slist_append(recipients, "<\(address)>") }
        defer { curl_slist_free_all(recipients) }

        let upload = Upload(message.data)
        session.reset()
        errorBuffer[0] = 0
        let unmanagedUpload = Unmanaged.passUnretained(upload).toOpaque()
        let unmanagedSession = Unmanaged.passUnretained(session).toOpaque()
        var code = withExtendedLifetime((upload, session)) { () -> CURLcode in
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
        // A cached connection the server closed while idle: nothing was said, try a new one.
        if code != CURLE_OK, session.lastReply == nil, reusedConnection(handle),
            Self.networkErrors.contains(code.rawValue)
        {
            upload.offset = 0
            session.reset()
            code = withExtendedLifetime((upload, session)) { () -> CURLcode in
                _ = ccurl_setopt_long(handle, CURLOPT_FRESH_CONNECT, 1)
                defer { _ = ccurl_setopt_long(handle, CURLOPT_FRESH_CONNECT, 0) }
                return curl_easy_perform(handle)
            }
        }
        if code == CURLE_OK { return }
        throw classify(code)
    }

    /// Failures that mean the connection broke, not that the server refused.
    private static let networkErrors: Set<UInt32> = [
        CURLE_SEND_ERROR.rawValue, CURLE_RECV_ERROR.rawValue, CURLE_GOT_NOTHING.rawValue,
    ].reduce(into: []) { $0.insert($1) }

    /// Whether the last transfer ran on a cached connection (CURLINFO_NUM_CONNECTS is 0).
    private func reusedConnection(_ handle: UnsafeMutableRawPointer) -> Bool {
        var connects = 0
        return ccurl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects == 0
    }

    // MARK: - Options

    private var url: String {
        let host = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
        let scheme = implicitTLS ? "smtps" : "smtp"
        return "\(scheme)://\(host):\(settings.port)/\(Self.heloName)"
    }

    private var implicitTLS: Bool {
        settings.tls == .implicit || (settings.tls == .auto && settings.port == 465)
    }

    private var useSSL: curl_usessl {
        switch settings.tls {
        case .none: CURLUSESSL_NONE
        case .implicit, .starttls: CURLUSESSL_ALL
        case .auto: implicitTLS ? CURLUSESSL_ALL : CURLUSESSL_TRY
        }
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
        let s = settings
        var codes: [CURLcode] = [
            ccurl_setopt_string(handle, CURLOPT_URL, url),
            ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1),
            ccurl_setopt_long(handle, CURLOPT_USE_SSL, Int(useSSL.rawValue)),
            ccurl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(message.envelopeFrom)>"),
            ccurl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients),
            ccurl_setopt_long(handle, CURLOPT_UPLOAD, 1),
            ccurl_setopt_long(handle, CURLOPT_INFILESIZE_LARGE, message.data.count),
            ccurl_setopt_read_function(handle, Upload.read),
            ccurl_setopt_pointer(handle, CURLOPT_READDATA, upload),
            ccurl_setopt_long(handle, CURLOPT_VERBOSE, 1),  // feeds the debug callback
            ccurl_setopt_debug_function(handle, SessionLog.record),
            ccurl_setopt_pointer(handle, CURLOPT_DEBUGDATA, session),
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
        return codes.first { $0 != CURLE_OK }
    }

    // MARK: - Failure classes

    private func classify(_ code: CURLcode) -> DeliveryError {
        let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
        guard let failure = session.failure else {
            // No refusal from the server: network, TLS, timeout, or a dropped connection.
            return DeliveryError(.transient, "\(detail)")
        }
        let message = "\(failure.reply) (\(detail))"
        // A 5xx to the mail transaction refuses this message; authentication replies
        // (530, 534, 535, 538, RFC 4954 §6) are the sender's setup, not this email's fault.
        let transaction = ["MAIL", "RCPT", "DATA"].contains(failure.command)
        let authentication = [530, 534, 535, 538].contains(failure.code) || code == CURLE_LOGIN_DENIED
        if (500...599).contains(failure.code), transaction, !authentication {
            return DeliveryError(.permanent, replyCode: failure.code, message)
        }
        return DeliveryError(.transient, replyCode: failure.code, message)
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

/// What the session said, from libcurl's debug callback (CURLOPT_DEBUGFUNCTION): the first
/// refusal (4xx or 5xx reply) and the command it answered, before QUIT's reply hides it.
private final class SessionLog {
    struct Failure {
        let code: Int
        let reply: String
        /// MAIL, RCPT, DATA, AUTH, EHLO, STARTTLS, ... ("" for the greeting).
        let command: String
    }

    var failure: Failure?
    var lastReply: String?
    private var lastCommand = ""

    func reset() {
        failure = nil
        lastReply = nil
        lastCommand = ""
    }

    static let record: curl_debug_callback = { _, type, data, size, userdata in
        guard let data, let userdata else { return 0 }
        let log = Unmanaged<SessionLog>.fromOpaque(userdata).takeUnretainedValue()
        guard type == CURLINFO_HEADER_IN || type == CURLINFO_HEADER_OUT else { return 0 }
        let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
            .trimmingCharacters(in: .newlines)
        if type == CURLINFO_HEADER_IN {
            log.lastReply = text
            if log.failure == nil, let code = Int(text.prefix(3)), code >= 400 {
                log.failure = Failure(code: code, reply: text, command: log.lastCommand)
            }
        } else {
            // Only the verb is kept: AUTH lines carry credentials.
            log.lastCommand = String(text.prefix { $0 != " " }).uppercased()
        }
        return 0
    }
}
