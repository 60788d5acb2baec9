import ArgumentParser
import CLinux
import Composition
import Delivery
import Dispatch
import Foundation
import LogFiles
import Logging
import Platform
import Queue
import QueueStores
import SMTP
import Settings
import Status

/// mailworkerd: the delivery daemon. Claims queue files under `DATA_DIR`, delivers them
/// over SMTP (or into `data/outbox/` with no `SMTP_SERVER`), and records each outcome.
@main
struct MailWorkerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mailworkerd",
        abstract: "Deliver queued emails over SMTP, with retries, backoff and dead letters.",
        discussion: "Settings come from the environment and the --env-file; see .env.example."
    )

    @Option(help: "A dotenv file read after the environment (missing is fine).")
    var envFile = ".env"

    @Flag(help: "Check the settings, print every problem, and exit (0 when all are valid).")
    var checkConfig = false

    func run() async throws {
        // Before any thread of ours exists: 2 malloc arenas, not up to 8 per core (see clinux.h).
        _ = clinux_limit_malloc_arenas(2)
        let check = SettingsCheck(envFile: envFile, checkConfig: checkConfig)
        guard let settings = try await check.settings(for: .worker) else { return }
        try settings.layout.create()
        let instance: InstanceLock
        do {
            instance = try InstanceLock(layout: settings.layout, shared: settings.workerdShared)
        } catch let failure as InstanceLock.Failure {
            // Not a usage error: the reason and exit 1, without ArgumentParser's usage text.
            FileHandle.standardError.write(Data("Error: \(failure)\n".utf8))
            throw ExitCode.failure
        }
        // Instances beyond the first (WORKERD_SHARED) keep their own log and status files.
        let suffix = instance.isPrimary ? "" : "-\(getpid())"
        try LogSetup.bootstrap(settings, fileName: "mailworkerd\(suffix).log")
        let logger = Logger(label: "mailworkerd")

        // The queue store QUEUE_STORE chooses: the file queue, or PostgreSQL.
        let queue = try QueueStores.open(
            settings,
            program: .worker,
            messageIDDomain: settings.sender.domain,
            logger: logger
        )
        if instance.isPrimary { WorkerStatus.removeStale(from: settings.layout) }
        let recovered = try queue.recoverClaims()
        if recovered > 0 { logger.notice("claims from an earlier run put back", metadata: ["count": "\(recovered)"]) }

        let composer = MessageComposer(sender: settings.sender)
        let smtp = settings.smtp
        let outbox = settings.layout.outbox
        if let smtp {
            logger.info(
                "delivering over SMTP",
                metadata: ["server": "\(smtp.host):\(smtp.port)", "tls": "\(smtp.tls)"]
            )
            if !smtp.verifyCertificate {
                logger.warning("SMTP_TLS_VERIFY=false: the server's certificate is not checked")
            }
        } else {
            logger.info("no SMTP_SERVER: writing messages to \(outbox)")
        }
        if let signer = settings.dkim {
            logger.info(
                "signing with DKIM",
                metadata: [
                    "domain": "\(signer.domain)", "selector": "\(signer.selector)",
                    "algorithm": "\(signer.key.algorithm.rawValue)", "bits": "\(signer.key.bits)",
                ]
            )
        }
        let webhooks = WebhookSender(settings: settings.webhook, events: queue.events, logger: logger)
        if let webhook = settings.webhook {
            logger.info(
                "sending delivery events",
                metadata: ["url": "\(webhook.url)", "events": "\(webhook.events.count)"]
            )
        }
        let pause = DeliveryPause(maxDelay: settings.deliveryPauseMax)
        // One connection per worker: SMTP_MAX_CONNECTIONS below NUM_WORKERS runs that many.
        let workers = min(settings.workers, settings.smtpMaxConnections ?? settings.workers)
        if workers < settings.workers {
            logger.notice(
                "SMTP_MAX_CONNECTIONS below NUM_WORKERS: running fewer workers",
                metadata: ["workers": "\(workers)"]
            )
        }
        let pool = WorkerPool(
            queue: queue,
            count: workers,
            pollingInterval: settings.pollingInterval,
            pause: pause,
            rate: SendRate(perSecond: settings.smtpMaxRate),
            logger: logger
        ) { metrics in
            try Self.agent(settings, queue, composer, webhooks, logger) { metrics.setRecordingTrouble($0) }
        }
        // POST /process-batch, carried out here for mailfcgi; by the first instance only.
        let control = instance.isPrimary ? Self.controlServer(settings, queue, composer, pool, webhooks, logger) : nil
        let watcher = try queue.watchArrivals { pool.notify() }

        let housekeeping = Housekeeping(queue: queue, settings: settings, pool: pool, logger: logger)
        let status = StatusPublisher(
            layout: settings.layout,
            fileName: "workers\(suffix).json",
            queue: queue,
            metrics: pool.metrics,
            rate: pool.rate,
            webhooks: webhooks,
            autoProcessing: settings.autoProcessing,
            logger: logger
        )
        pool.onRateLowered { status.refresh() }

        let autoProcessing = settings.autoProcessing
        let primary = instance.isPrimary
        let shutdownTimeout = settings.shutdownTimeout
        let workersFile = instance.isPrimary ? nil : settings.layout.status + "/workers\(suffix).json"
        try await DaemonLifecycle.run(logger: logger) {
            watcher.start()
            housekeeping.start()
            // One sender per data directory: further instances leave the events to the first.
            if primary { webhooks.start() }
            control?.start()
            status.start()
            if autoProcessing {
                try pool.start()
                status.publish(state: .running)
            } else {
                logger.notice("AUTO_PROCESSING_ENABLED=false: not delivering")
            }
        } stop: {
            // Front to back: no new claims, sends in flight finish (or their claims go back),
            // then the chores, the watcher and the status file.
            // One SHUTDOWN_TIMEOUT for everything in flight: the workers' sends and a
            // process-batch request, which stops being accepted first.
            let deadline = Date().addingTimeInterval(shutdownTimeout)
            control?.stopAccepting()
            var unfinished: [String] = []
            if autoProcessing {
                status.publish(state: .stopping)
                unfinished = await pool.stop(timeout: shutdownTimeout)
            }
            if let name = await control?.finish(timeout: max(0, deadline.timeIntervalSinceNow)) {
                unfinished.append(name)
            }
            await housekeeping.stop()
            await webhooks.stop()
            await watcher.stop()
            await status.stop()
            for name in unfinished {
                do { try queue.abandonClaim(name) } catch {
                    logger.error("cannot put a claim back", metadata: ["file": "\(name)", "error": "\(error)"])
                }
            }
            status.publish(state: autoProcessing ? .stopped : .disabled)
            if let workersFile { try? Syscall.unlink(workersFile) }
        }
        // Returning ends the process (exit(3)), also with threads still stuck in a send.
        logger.info("stopped")
    }

    /// A delivery agent with its own transport (a connection of its own), as `settings` say:
    /// policy, DKIM signer, suppression TTL, the events the webhook wants.
    private static func agent(
        _ settings: MailSettings,
        _ queue: any QueueStore,
        _ composer: MessageComposer,
        _ webhooks: WebhookSender,
        _ logger: Logger,
        recordingPatience: TimeInterval = .infinity,
        recordingTrouble: @escaping @Sendable (String?) -> Void = { _ in }
    ) throws -> DeliveryAgent {
        DeliveryAgent(
            queue: queue,
            composer: composer,
            transport: try transport(settings.smtp, outbox: settings.layout.outbox),
            policy: settings.delivery,
            signer: settings.dkim,
            suppressionTTL: settings.suppressionTTL,
            eventRecorded: { webhooks.notify() },
            recordedEvents: settings.webhook?.events ?? [],
            logger: logger,
            recordingPatience: recordingPatience,
            recordingTrouble: recordingTrouble
        )
    }

    /// A new connection's transport: SMTP to the relay, or the outbox without `SMTP_SERVER`.
    private static func transport(_ smtp: SMTPSettings?, outbox: String) throws -> any Transport {
        try smtp.map(SMTPTransport.init) ?? FileTransport(directory: outbox)
    }

    /// mailworkerd's control socket for `POST /process-batch`, with its own agent per request;
    /// nil (logged) when it cannot listen, so that the route answers 503.
    private static func controlServer(
        _ settings: MailSettings,
        _ queue: any QueueStore,
        _ composer: MessageComposer,
        _ pool: WorkerPool,
        _ webhooks: WebhookSender,
        _ logger: Logger
    ) -> ControlServer? {
        do {
            return try ControlServer(
                path: settings.layout.controlSocket,
                pause: pool.pause,
                logger: logger,
                resumed: { pool.notify() },
                makeAgent: {
                    // A request cannot wait for the disk to come back: after a few seconds the
                    // claim is given up (and recovered; a delivered email may then be sent again).
                    try Self.agent(settings, queue, composer, webhooks, logger, recordingPatience: 5)
                }
            )
        } catch {
            logger.error(
                "no control socket: POST /process-batch will answer 503",
                metadata: ["path": "\(settings.layout.controlSocket)", "error": "\(error)"]
            )
            return nil
        }
    }
}
