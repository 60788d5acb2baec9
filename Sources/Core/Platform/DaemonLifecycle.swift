import Logging
import ServiceLifecycle

/// How both daemons run and stop, through swift-service-lifecycle: one service in a
/// `ServiceGroup` that starts the daemon's threads, waits for graceful shutdown (SIGTERM or
/// SIGINT, which the group observes instead of their default action), then stops them in
/// the daemon's order, awaiting each (`BackgroundThread.join()`), so nothing blocks the
/// cooperative thread pool.
public enum DaemonLifecycle {
    /// Runs `start`, then, at SIGTERM or SIGINT, logs `stopping` and runs `stop`.
    /// - Throws: what `start` or `stop` throws (the program then exits non-zero).
    public static func run(
        logger: Logger,
        start: @escaping @Sendable () throws -> Void,
        stop: @escaping @Sendable () async throws -> Void
    ) async throws {
        let daemon = ClosureService {
            try start()
            // Returns once graceful shutdown begins; throws only when the task is cancelled,
            // which is a stop too.
            try? await gracefulShutdown()
            logger.info("stopping")
            try await stop()
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [daemon],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
