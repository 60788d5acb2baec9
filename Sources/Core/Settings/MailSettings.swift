import DKIM
import Delivery
import Foundation
import Logging
import MailModel
import Queue

/// Everything both programs read from the environment (and `.env`). Names, units and
/// defaults are documented in `.env.example`; the seed's names keep their meaning.
public struct MailSettings: Sendable {
    /// `DATA_DIR` (default `data`): queue, trash, dead letters, outbox, status.
    public var dataDirectory: String
    /// `TEMPLATES_DIR` (default `templates`): the email templates and their manifest.
    public var templatesDirectory: String
    /// `SENDER_EMAIL` and `SENDER_NAME`.
    public var sender: Sender
    /// Set when `SMTP_SERVER` is; nil means the file transport into `data/outbox/`. Always
    /// nil in mailfcgi, which reads no relay setting (`Program.responder`).
    public var smtp: SMTPSettings?
    /// `AUTO_PROCESSING_ENABLED` (default true): whether mailworkerd delivers.
    public var autoProcessing: Bool
    /// `NUM_WORKERS` (default 3).
    public var workers: Int
    /// `WORKER_POLLING_INTERVAL` seconds (default 5): the fallback re-scan when no change
    /// notification arrives.
    public var pollingInterval: Double
    /// `MAX_RETRIES`, `RETRY_BASE_DELAY` (for failures about one email) and
    /// `MAX_QUEUE_LIFETIME` seconds (default 5 days).
    public var delivery: DeliveryPolicy
    /// `DELIVERY_PAUSE_MAX` seconds (default 300): the longest pause between probes of a
    /// relay that failed on the sender's side (the pause starts at 1 s and doubles).
    public var deliveryPauseMax: Double
    /// `CLAIM_TIMEOUT` seconds (default 3600): an older claim is put back to pending.
    public var claimTimeout: Double
    /// `QUEUE_STORE` (default `file`) and, for `postgres`, `DATABASE_URL`: where the queue is.
    public var queueStore: QueueStoreChoice
    /// `CLAIM_LEASE` seconds (default 30): how long a database claim holds without renewal
    /// (renewed every third of it while the email is sent); a lapsed one is taken over.
    public var claimLease: Double
    /// `TRASH_RETENTION_DAYS` (default 7): trash older than this (and than
    /// `IDEMPOTENCY_TTL_HOURS`) is deleted; delivered and canceled emails stay findable by
    /// `GET /email/{request_id}` until then.
    public var trashRetentionDays: Int
    /// `MAX_SCHEDULE_DAYS` (default 30): how far ahead `send_at` may be.
    public var maxScheduleDays: Int
    /// `IDEMPOTENCY_TTL_HOURS` (default 24): how long an `Idempotency-Key` binds its request.
    public var idempotencyTTLHours: Int
    /// `QUEUE_ACTIVE_LIMIT` (default 50,000): the most due emails the file queue's claim index
    /// holds in mailworkerd, and the most deferred ones (about 60 bytes each); a deeper backlog
    /// is read in as room frees, oldest first, so memory does not grow with it.
    public var queueActiveLimit: Int
    /// `SMTP_MAX_RATE` (default 0: no limit): messages a second across every worker.
    public var smtpMaxRate: Double
    /// `SMTP_MAX_CONNECTIONS` (default `NUM_WORKERS`): connections to the relay at once;
    /// fewer than `NUM_WORKERS` runs that many workers.
    public var smtpMaxConnections: Int?
    /// `SUPPRESSION_TTL_DAYS` (default 0: never): how long a suppression applies.
    public var suppressionTTLDays: Int
    /// `MAX_BATCH` (default 100): the most emails in one `POST /emails/batch`.
    public var maxBatch: Int
    /// `SHUTDOWN_TIMEOUT` seconds (default 30): how long sends in flight (mailworkerd) and
    /// requests in flight (mailfcgi) may finish at stop.
    public var shutdownTimeout: Double
    /// `WORKERD_SHARED` (default false): several mailworkerd processes on one data directory.
    public var workerdShared: Bool
    /// Log files: `LOG_DIR` (default `logs`), rotated at `LOG_MAX_BYTES` (default 5 MiB)
    /// keeping `LOG_BACKUPS` (default 3); `LOG_STDERR` auto (when stderr is a terminal),
    /// true or false.
    public var logDirectory: String
    public var logMaxBytes: Int
    public var logBackups: Int
    public var logToStderr: Bool?
    /// `FCGI_SOCKET` (default `run/mailfcgi.sock`): the responder's unix socket.
    public var fcgiSocket: String
    /// `FCGI_THREADS` (default 16, or 2 x cores when more): an enqueue spends most of its
    /// time waiting in fsync(2), not on a core, and concurrent enqueues share the queue
    /// directory's sync (`DirectorySync`), so more threads than cores make larger groups.
    /// Measured on 2 cores at 64 connections, same run: 4 threads 2,629 req/s (p99 33 ms),
    /// 16 threads 3,647 (29 ms), 64 threads 3,321 (43 ms).
    public var fcgiThreads: Int
    /// `DKIM_DOMAIN`, `DKIM_SELECTOR` and `DKIM_PRIVATE_KEY_FILE` (all three, or none: nothing
    /// is signed), with the key loaded and checked; mailworkerd only (mailfcgi withholds them).
    public var dkim: DKIMSigner?
    /// `WEBHOOK_*`: where delivery events go; nil without `WEBHOOK_URL` (mailworkerd only).
    public var webhook: WebhookSettings?
    /// `MAX_BODY_BYTES`: larger request bodies get 413. By default it follows from
    /// `MAX_MESSAGE_BYTES`: 4/3 of it (base64 attachments in JSON) plus 1 MiB, so a request
    /// whose message is over that limit is still read and told so by name.
    public var maxBodyBytes: Int
    /// `MAX_MESSAGE_BYTES` (default 10 MiB, as Postmark allows): the largest composed message,
    /// headers, text and encoded attachments together; a larger one is answered 413.
    public var maxMessageBytes: Int
    /// `MAX_ATTACHMENTS` (default 20): the most `attachments` items on one email.
    public var maxAttachments: Int
    /// `FCGI_IDLE_TIMEOUT` seconds (default 300): a connection from the web server that sends
    /// nothing for this long, with nothing in flight, is closed. Longer than nginx's upstream
    /// `keepalive_timeout` (60 s), so that nginx normally closes its idle connections first.
    public var fcgiIdleTimeout: Double

    /// `MIN_FREE_BYTES` (default 64 MiB) and `MIN_FREE_INODES` (default 1024): below
    /// either on the data directory's filesystem, `POST /email` answers 507 and `/health`
    /// reports storage, leaving the rest for mailworkerd's bookkeeping.
    public var minFreeBytes: UInt64
    public var minFreeInodes: UInt64

    /// `LOG_LEVEL` (default info): trace, debug, info, notice, warning, error, critical.
    public var logLevel: Logger.Level
    /// `LOG_FORMAT` (default text): `text` lines or `json`, one object a line.
    public var logFormat: LogFormat

    /// Which program reads the settings.
    public enum Program: Sendable {
        /// mailfcgi: everything but the relay's settings, which it withholds.
        case responder
        /// mailctl: what the queue needs; the relay's and DKIM's settings are not read.
        case admin
        /// mailworkerd: everything.
        case worker

        /// The executable's name, for messages.
        public var name: String {
            switch self {
            case .responder: "mailfcgi"
            case .admin: "mailctl"
            case .worker: "mailworkerd"
            }
        }
    }

    /// Reads and checks every setting `program` uses.
    /// - Throws: `ConfigError` naming every variable whose value cannot be used.
    public init(_ env: EnvironmentReader, program: Program = .worker) throws(ConfigError) {
        dataDirectory = env.string("DATA_DIR") ?? "data"
        templatesDirectory = env.string("TEMPLATES_DIR") ?? "templates"
        let smtpServer = program == .worker ? env.string("SMTP_SERVER") : nil
        let address = env.string("SENDER_EMAIL")
        if smtpServer != nil, address == nil {
            env.report("SENDER_EMAIL", "required when SMTP_SERVER is set")
        }
        let senderName = env.string("SENDER_NAME")
        if let senderName, let problem = HeaderText.controlCharacterProblem(senderName) {
            env.report("SENDER_NAME", "\(problem): it goes into the From header")
        }
        sender = Sender(address: address ?? "mail-dispatch@localhost", name: senderName)
        if !Mailbox.isValid(sender.address) {
            env.report("SENDER_EMAIL", "\"\(sender.address)\" is not an email address")
        }
        smtp = program == .worker ? Self.relay(env, server: smtpServer, sender: sender) : nil
        autoProcessing = env.bool("AUTO_PROCESSING_ENABLED", default: true)
        workers = env.int("NUM_WORKERS", default: 3, range: 1...256)
        pollingInterval = env.seconds("WORKER_POLLING_INTERVAL", default: 5, range: 0.01...3600)
        delivery = DeliveryPolicy(
            retry: RetryPolicy(
                maxRetries: env.int("MAX_RETRIES", default: 3, range: 0...100),
                baseDelay: env.seconds("RETRY_BASE_DELAY", default: 1, range: 0...86400)
            ),
            maxQueueLifetime: env.seconds("MAX_QUEUE_LIFETIME", default: 5 * 86_400, range: 1...(365 * 86_400))
        )
        deliveryPauseMax = env.seconds("DELIVERY_PAUSE_MAX", default: 300, range: 1...86_400)
        claimTimeout = env.seconds("CLAIM_TIMEOUT", default: 3600, range: 1...(7 * 86400))
        queueStore = QueueStoreChoice.read(env)
        claimLease = env.seconds("CLAIM_LEASE", default: 30, range: 1...3600)
        queueActiveLimit = env.int("QUEUE_ACTIVE_LIMIT", default: 50_000, range: 10...10_000_000)
        trashRetentionDays = env.int("TRASH_RETENTION_DAYS", default: 7, range: 0...3650)
        maxScheduleDays = env.int("MAX_SCHEDULE_DAYS", default: 30, range: 0...365)
        idempotencyTTLHours = env.int("IDEMPOTENCY_TTL_HOURS", default: 24, range: 1...720)
        maxBatch = env.int("MAX_BATCH", default: 100, range: 1...1000)
        suppressionTTLDays = env.int("SUPPRESSION_TTL_DAYS", default: 0, range: 0...3650)
        smtpMaxRate = env.number("SMTP_MAX_RATE", default: 0, range: 0...1_000_000, unit: "messages a second")
        smtpMaxConnections =
            env.string("SMTP_MAX_CONNECTIONS") == nil
            ? nil : env.int("SMTP_MAX_CONNECTIONS", default: 1, range: 1...1024)
        shutdownTimeout = env.seconds("SHUTDOWN_TIMEOUT", default: 30, range: 0...3600)
        workerdShared = env.bool("WORKERD_SHARED", default: false)
        logDirectory = env.string("LOG_DIR") ?? "logs"
        logMaxBytes = env.int("LOG_MAX_BYTES", default: 5 << 20, range: 4096...(1 << 30))
        logBackups = env.int("LOG_BACKUPS", default: 3, range: 0...100)
        if let raw = env.string("LOG_STDERR"), raw.lowercased() != "auto" {
            logToStderr = env.bool("LOG_STDERR", default: true)
        } else {
            logToStderr = nil
        }
        fcgiSocket = env.string("FCGI_SOCKET") ?? "run/mailfcgi.sock"
        fcgiThreads = env.int(
            "FCGI_THREADS",
            default: max(16, 2 * ProcessInfo.processInfo.activeProcessorCount),
            range: 1...1024
        )
        logLevel = env.choice("LOG_LEVEL", default: .info)
        logFormat = env.choice("LOG_FORMAT", default: .text)
        dkim = program == .worker ? Self.signer(env, sender: sender) : nil
        webhook = program == .worker ? WebhookSettings.read(env) : nil
        maxMessageBytes = env.int("MAX_MESSAGE_BYTES", default: 10 << 20, range: (64 << 10)...(40 << 20))
        maxAttachments = env.int("MAX_ATTACHMENTS", default: 20, range: 0...Attachment.maxCount)
        maxBodyBytes = env.int(
            "MAX_BODY_BYTES",
            default: Self.bodyLimit(forMessageLimit: maxMessageBytes),
            range: 1024...(64 << 20)
        )
        minFreeBytes = UInt64(env.int("MIN_FREE_BYTES", default: 64 << 20, range: 0...(1 << 50)))
        minFreeInodes = UInt64(env.int("MIN_FREE_INODES", default: 1024, range: 0...(1 << 40)))
        fcgiIdleTimeout = env.seconds("FCGI_IDLE_TIMEOUT", default: 300, range: 1...86_400)
        try env.checked()
    }

    /// The relay's settings (read, and checked, also without SMTP_SERVER, so that every name
    /// is known when the .env file is checked for names no program reads); nil without a server.
    private static func relay(_ env: EnvironmentReader, server: String?, sender: Sender) -> SMTPSettings? {
        let password = env.string("PASSWORD", isSecret: true)
        let username = env.string("SMTP_USERNAME")
        let relay = SMTPSettings(
            host: server ?? "",
            port: env.int("PORT", default: 465, range: 1...65535),
            tls: env.choice("SMTP_TLS", default: .auto),
            username: password == nil ? nil : (username ?? sender.address),
            password: password,
            caFile: env.string("SMTP_CA_FILE"),
            verifyCertificate: env.bool("SMTP_TLS_VERIFY", default: true),
            connectTimeout: env.int("SMTP_CONNECT_TIMEOUT", default: 10, range: 1...600),
            timeout: env.int("SMTP_TIMEOUT", default: 60, range: 1...3600)
        )
        guard let server else { return nil }
        if password != nil, relay.tls == .none, !SMTPSettings.isLoopback(server) {
            env.report(
                "PASSWORD",
                "not sent in clear: SMTP_TLS=none is allowed with a password only to a relay on this host "
                    + "(SMTP_SERVER=\(server) is not loopback); use SMTP_TLS=auto, starttls or implicit"
            )
        }
        return relay
    }

    /// The DKIM signer the settings describe, or nil (none given, or a problem reported).
    private static func signer(_ env: EnvironmentReader, sender: Sender) -> DKIMSigner? {
        let domain = env.string("DKIM_DOMAIN")?.lowercased()
        let selector = env.string("DKIM_SELECTOR")
        let keyFile = env.string("DKIM_PRIVATE_KEY_FILE")
        let given = [("DKIM_DOMAIN", domain), ("DKIM_SELECTOR", selector), ("DKIM_PRIVATE_KEY_FILE", keyFile)]
        if given.allSatisfy({ $0.1 == nil }) { return nil }
        for (name, value) in given where value == nil {
            env.report(name, "required with the other DKIM_ settings (give all three, or none to sign nothing)")
        }
        guard let domain, let selector, let keyFile else { return nil }
        var valid = true
        if !Self.isDomainName(domain) {
            env.report("DKIM_DOMAIN", "\"\(domain)\" is not a domain name")
            valid = false
        } else if !(sender.domain.lowercased() == domain || sender.domain.lowercased().hasSuffix("." + domain)) {
            env.report(
                "DKIM_DOMAIN",
                "\(domain) is not aligned with SENDER_EMAIL's domain \(sender.domain): DMARC needs d= to be the "
                    + "From domain or a parent of it"
            )
            valid = false
        }
        if !Self.isDomainName(selector) {
            env.report("DKIM_SELECTOR", "\"\(selector)\" is not a selector (DNS labels: letters, digits, -, .)")
            valid = false
        }
        let key: DKIMKey
        do {
            key = try DKIMKey(path: keyFile)
        } catch {
            env.report("DKIM_PRIVATE_KEY_FILE", error.description)
            return nil
        }
        return valid ? DKIMSigner(domain: domain, selector: selector, key: key) : nil
    }

    /// Whether `name` is dot-separated DNS labels of letters, digits and inner hyphens
    /// (RFC 1035 §2.3.1; underscores allowed, as selectors use them).
    static func isDomainName(_ name: String) -> Bool {
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        return name.utf8.count <= 253
            && labels.allSatisfy { label in
                !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                    && label.unicodeScalars.allSatisfy {
                        $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_")
                    }
            }
    }

    /// `MAX_BODY_BYTES`' default for a `MAX_MESSAGE_BYTES` of `messageBytes`: base64 is 4/3
    /// of the bytes it carries, and 1 MiB leaves room for the JSON around it.
    /// `scripts/run.sh` works out the same figure for nginx's `client_max_body_size`.
    public static func bodyLimit(forMessageLimit messageBytes: Int) -> Int {
        messageBytes / 3 * 4 + (1 << 20)
    }

    /// `SUPPRESSION_TTL_DAYS` in seconds, nil for never.
    public var suppressionTTL: TimeInterval? {
        suppressionTTLDays == 0 ? nil : TimeInterval(suppressionTTLDays) * 86_400
    }

    /// The queue folders under `dataDirectory`.
    public var layout: QueueLayout { QueueLayout(root: dataDirectory) }
}

/// Where the queue is kept.
public enum QueueStoreChoice: Sendable, Equatable {
    /// The file queue under `DATA_DIR` (one host).
    case file
    /// A PostgreSQL database several hosts share; the libpq connection string or URI.
    case postgres(url: String)

    /// libpq's sslmode values (libpq's "SSL Support": the modes it accepts).
    static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// The `sslmode` a URI's query (`?sslmode=...&...`) or a key=value string (`sslmode=...`)
    /// gives, if any.
    static func sslMode(in url: String) -> String? {
        let separators: Set<Character> = url.contains("://") ? ["?", "&"] : [" ", "\t"]
        for field in url.split(whereSeparator: { separators.contains($0) }) {
            let parts = field.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == "sslmode" { return parts[1].trimmingCharacters(in: ["'"]) }
        }
        return nil
    }

    /// `QUEUE_STORE` (`file` or `postgres`) and `DATABASE_URL` (required for postgres,
    /// refused without it, never echoed: it may hold a password).
    static func read(_ env: EnvironmentReader) -> QueueStoreChoice {
        let url = env.string("DATABASE_URL", isSecret: true)
        switch env.string("QUEUE_STORE")?.lowercased() ?? "file" {
        case "file":
            if url != nil { env.report("DATABASE_URL", "set, but QUEUE_STORE is not postgres: the file queue is used") }
            return .file
        case "postgres", "postgresql":
            guard let url, !url.isEmpty else {
                env.report(
                    "DATABASE_URL",
                    "required with QUEUE_STORE=postgres (a libpq URI: postgresql://user@host/db)"
                )
                return .file
            }
            let scheme = url.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            if url.contains("://") {
                if !["postgresql", "postgres"].contains(scheme.lowercased()) {
                    env.report(
                        "DATABASE_URL",
                        "must be a postgresql:// URI or a libpq key=value string, not \(scheme)://"
                    )
                }
            } else if !url.contains("=") {
                // libpq would refuse it only at connect time ("missing = after ...").
                env.report(
                    "DATABASE_URL",
                    "is neither a postgresql:// URI nor a libpq key=value string (host=... dbname=...)"
                )
            }
            if let mode = Self.sslMode(in: url), !Self.sslModes.contains(mode) {
                env.report("DATABASE_URL", "sslmode \"\(mode)\" is not one of \(Self.sslModes.joined(separator: ", "))")
            }
            return .postgres(url: url)
        case let other:
            env.report("QUEUE_STORE", "\"\(other)\" is not a queue store: file or postgres")
            return .file
        }
    }
}
