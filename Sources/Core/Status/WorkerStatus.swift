import Foundation
import MailModel
import Platform
import Queue

/// What mailworkerd publishes in `data/status/workers.json`, rewritten atomically every
/// second and at once when its pool starts or stops. mailfcgi reads it for
/// `GET /workers/status` and `GET /health`; the two share nothing else.
public struct WorkerStatus: Codable, Equatable, Sendable {
    /// When this was written. Older than `WorkerStatus.staleAfter` means mailworkerd is gone.
    public var heartbeat: Date
    public var pid: Int32
    public var startedAt: Date
    public var autoProcessingEnabled: Bool
    public var poolState: PoolState
    public var workers: [WorkerMetrics]
    public var sender: SenderHealth
    /// Pending and deferred emails in the worker's index.
    public var queuePending: Int
    public var queueDeferred: Int
    /// Queue entries mailworkerd could neither handle nor set aside ("name: reason").
    public var queueProblems: [String]
    /// Why mailworkerd cannot record outcomes right now (e.g. the disk is full), or nil.
    public var storageError: String?
    /// mailworkerd's own metrics in the Prometheus text format (0.0.4), which mailfcgi's
    /// `GET /metrics` serves after its own; nil from a mailworkerd that predates it.
    public var metrics: String?
    /// The pool's send rate (`SMTP_MAX_RATE` and what a relay's throttle made of it).
    public var sendRate: SendRateStatus?
    /// Delivery events waiting for the webhook, and given up.
    public var webhookEvents: WebhookBacklog?

    /// Seconds between heartbeats, and after how long a heartbeat counts as stale (three).
    public static let interval: TimeInterval = 1
    public static let staleAfter: TimeInterval = 3 * interval
    /// How far ahead of the reader's clock a heartbeat may be before it counts as stale: a
    /// heartbeat from the future says nothing about whether its writer still runs.
    public static let clockSkewAllowed: TimeInterval = 5

    public init(
        heartbeat: Date,
        pid: Int32,
        startedAt: Date,
        autoProcessingEnabled: Bool,
        poolState: PoolState,
        workers: [WorkerMetrics],
        sender: SenderHealth,
        queuePending: Int,
        queueDeferred: Int,
        queueProblems: [String] = [],
        storageError: String? = nil,
        metrics: String? = nil,
        sendRate: SendRateStatus? = nil,
        webhookEvents: WebhookBacklog? = nil
    ) {
        self.heartbeat = heartbeat
        self.pid = pid
        self.startedAt = startedAt
        self.autoProcessingEnabled = autoProcessingEnabled
        self.poolState = poolState
        self.workers = workers
        self.sender = sender
        self.queuePending = queuePending
        self.queueDeferred = queueDeferred
        self.queueProblems = queueProblems
        self.storageError = storageError
        self.metrics = metrics
        self.sendRate = sendRate
        self.webhookEvents = webhookEvents
    }

    enum CodingKeys: String, CodingKey {
        case heartbeat, pid
        case startedAt = "started_at"
        case autoProcessingEnabled = "auto_processing_enabled"
        case poolState = "pool_state"
        case workers, sender
        case queuePending = "queue_pending"
        case queueDeferred = "queue_deferred"
        case queueProblems = "queue_problems"
        case storageError = "storage_error"
        case metrics
        case sendRate = "send_rate"
        case webhookEvents = "webhook_events"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        heartbeat = try c.decode(Date.self, forKey: .heartbeat)
        pid = try c.decode(Int32.self, forKey: .pid)
        startedAt = try c.decode(Date.self, forKey: .startedAt)
        autoProcessingEnabled = try c.decode(Bool.self, forKey: .autoProcessingEnabled)
        poolState = try c.decode(PoolState.self, forKey: .poolState)
        workers = try c.decode([WorkerMetrics].self, forKey: .workers)
        sender = try c.decode(SenderHealth.self, forKey: .sender)
        queuePending = try c.decode(Int.self, forKey: .queuePending)
        queueDeferred = try c.decode(Int.self, forKey: .queueDeferred)
        // Absent in status files written before these fields existed.
        queueProblems = try c.decodeIfPresent([String].self, forKey: .queueProblems) ?? []
        storageError = try c.decodeIfPresent(String.self, forKey: .storageError)
        metrics = try c.decodeIfPresent(String.self, forKey: .metrics)
        sendRate = try c.decodeIfPresent(SendRateStatus.self, forKey: .sendRate)
        webhookEvents = try c.decodeIfPresent(WebhookBacklog.self, forKey: .webhookEvents)
    }

    /// Whether the heartbeat is recent enough at `now` for mailworkerd to count as running:
    /// at most `staleAfter` old, and not more than `clockSkewAllowed` in the future.
    public func isFresh(at now: Date = Date()) -> Bool {
        Self.isFresh(heartbeat, at: now)
    }

    /// `isFresh(at:)` for any heartbeat time (the status file's own modification time too).
    public static func isFresh(_ heartbeat: Date, at now: Date) -> Bool {
        let age = now.timeIntervalSince(heartbeat)
        return age <= staleAfter && age >= -clockSkewAllowed
    }

    /// When the primary instance's status file was last written or touched, or nil.
    public static func lastTouched(in layout: QueueLayout) -> Date? {
        Syscall.modificationTime(layout.status + "/workers.json")
    }

    /// Writes `self` atomically as `fileName` (`workers.json`, or `workers-{pid}.json` for
    /// further instances); no directory fsync: it is rewritten every second.
    /// - Throws: `SystemError`, `EncodingError`.
    public func write(to layout: QueueLayout, fileName: String = "workers.json") throws {
        try AtomicFile.write(
            try QueueCoding.encoder().encode(self),
            to: fileName,
            in: layout.status,
            syncDirectory: false,
            mode: 0o644
        )
    }

    /// The primary instance's status file (`workers.json`), or nil when missing or unreadable.
    public static func read(from layout: QueueLayout) -> WorkerStatus? {
        read(layout.status + "/workers.json")
    }

    /// Deletes status files of further instances that stopped sending heartbeats.
    public static func removeStale(from layout: QueueLayout, now: Date = Date()) {
        for name in (try? Syscall.listDirectory(layout.status)) ?? [] where name.hasPrefix("workers-") {
            let path = layout.status + "/" + name
            if read(path)?.isFresh(at: now) != true { try? Syscall.unlink(path) }
        }
    }

    private static func read(_ path: String) -> WorkerStatus? {
        guard let bytes = try? Syscall.readFile(path, followSymlinks: false) else { return nil }
        return try? QueueCoding.decoder().decode(WorkerStatus.self, from: Data(bytes))
    }
}

/// The state of mailworkerd's worker pool, as `/workers/status` answers it
/// (`worker_pool_status`); the raw values are the strings the status file and the API use.
public enum PoolState: String, Codable, Sendable, CaseIterable {
    /// Started; the workers are being created.
    case starting
    /// Delivering.
    case running
    /// SIGTERM received: finishing the sends in flight.
    case stopping
    /// Exited after a stop.
    case stopped
    /// Running without delivering (`AUTO_PROCESSING_ENABLED=false`).
    case disabled
    /// Not written by mailworkerd: what `/workers/status` answers when its heartbeat is stale
    /// and it did not say it stopped (it died), or when it never wrote a status file.
    case notRunning = "not_running"
}

/// One worker thread's figures, named as the seed's `/workers/status` names them.
public struct WorkerMetrics: Codable, Equatable, Sendable {
    public var workerID: Int
    public var running: Bool
    /// The queue file being delivered now, if any.
    public var currentBatch: String?
    public var emailsSent: Int
    public var emailsFailed: Int
    /// Mean milliseconds from claim to recorded outcome over this worker's attempts.
    public var avgLatencyMs: Double

    public init(
        workerID: Int,
        running: Bool = false,
        currentBatch: String? = nil,
        emailsSent: Int = 0,
        emailsFailed: Int = 0,
        avgLatencyMs: Double = 0
    ) {
        self.workerID = workerID
        self.running = running
        self.currentBatch = currentBatch
        self.emailsSent = emailsSent
        self.emailsFailed = emailsFailed
        self.avgLatencyMs = avgLatencyMs
    }

    enum CodingKeys: String, CodingKey {
        case workerID = "worker_id"
        case running
        case currentBatch = "current_batch"
        case emailsSent = "emails_sent"
        case emailsFailed = "emails_failed"
        case avgLatencyMs = "avg_latency_ms"
    }

    /// Every key is written, `current_batch` as null when idle (the seed's shape).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(workerID, forKey: .workerID)
        try container.encode(running, forKey: .running)
        try container.encode(currentBatch, forKey: .currentBatch)
        try container.encode(emailsSent, forKey: .emailsSent)
        try container.encode(emailsFailed, forKey: .emailsFailed)
        try container.encode(avgLatencyMs, forKey: .avgLatencyMs)
    }
}

/// Whether delivery works: unhealthy after a failure on the sender's side (relay
/// unreachable, TLS, authentication, 421), while delivery is paused, until a probe or an
/// attempt reaches the relay again.
public struct SenderHealth: Codable, Equatable, Sendable {
    public var healthy: Bool
    public var lastAttemptAt: Date?
    public var lastSuccessAt: Date?
    public var lastError: String?
    /// While delivery is paused: when the next probe of the relay is due.
    public var pausedUntil: Date?

    public init(
        healthy: Bool = true,
        lastAttemptAt: Date? = nil,
        lastSuccessAt: Date? = nil,
        lastError: String? = nil,
        pausedUntil: Date? = nil
    ) {
        self.healthy = healthy
        self.lastAttemptAt = lastAttemptAt
        self.lastSuccessAt = lastSuccessAt
        self.lastError = lastError
        self.pausedUntil = pausedUntil
    }

    enum CodingKeys: String, CodingKey {
        case healthy
        case lastAttemptAt = "last_attempt_at"
        case lastSuccessAt = "last_success_at"
        case lastError = "last_error"
        case pausedUntil = "paused_until"
    }

    /// Every key is written, null when unknown.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(healthy, forKey: .healthy)
        try container.encode(lastAttemptAt, forKey: .lastAttemptAt)
        try container.encode(lastSuccessAt, forKey: .lastSuccessAt)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(pausedUntil, forKey: .pausedUntil)
    }
}

/// The pool's send rate as the status file and `/workers/status` show it: messages a second,
/// null for no limit.
public struct SendRateStatus: Codable, Equatable, Sendable {
    /// `SMTP_MAX_RATE`, or null.
    public var configured: Double?
    /// The limit now, or null.
    public var current: Double?
    /// Whether a relay's "slow down" lowered it (it recovers by itself).
    public var throttled: Bool

    public init(configured: Double?, current: Double?, throttled: Bool) {
        self.configured = configured
        self.current = current
        self.throttled = throttled
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(configured, forKey: .configured)
        try c.encode(current, forKey: .current)
        try c.encode(throttled, forKey: .throttled)
    }

    enum CodingKeys: String, CodingKey { case configured, current, throttled }
}

/// Delivery events waiting for the webhook (`pending`) and given up after the last retry
/// (`failed`, in `data/events/failed/`).
public struct WebhookBacklog: Codable, Equatable, Sendable {
    public var pending: Int
    public var failed: Int

    public init(pending: Int, failed: Int) {
        self.pending = pending
        self.failed = failed
    }
}
