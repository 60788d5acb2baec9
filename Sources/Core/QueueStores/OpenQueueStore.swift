import Foundation
import Logging
import PostgresQueue
import Queue
import Settings

/// Opens the queue store the settings choose (`QUEUE_STORE`), the same way in every program.
public enum QueueStores {
    /// The store for `program`: the file queue under `DATA_DIR`, or the PostgreSQL database
    /// at `DATABASE_URL` (connected, and its schema migrated, before this returns).
    /// - Parameter messageIDDomain: the domain of Message-IDs the file queue gives emails of
    ///   the Python service's queue files (mailworkerd).
    /// - Throws: `SystemError` when the queue's folders cannot be made, `DatabaseError`
    ///   when the database cannot be reached or migrated.
    public static func open(
        _ settings: MailSettings,
        program: MailSettings.Program,
        messageIDDomain: String? = nil,
        logger: Logger
    ) throws -> any QueueStore {
        let idempotencyTTL = TimeInterval(settings.idempotencyTTLHours) * 3600
        switch settings.queueStore {
        case .file:
            // Intake keeps free space in reserve; the others may use what is left.
            return try FileQueue(
                layout: settings.layout,
                minimumFree: program == .responder ? (settings.minFreeBytes, settings.minFreeInodes) : (0, 0),
                messageIDDomain: messageIDDomain ?? "localhost",
                idempotencyTTL: idempotencyTTL,
                indexesEnqueues: program != .responder,  // mailfcgi never claims
                activeLimit: settings.queueActiveLimit,
                logger: logger
            )
        case .postgres(let url):
            return try PostgresQueueStore(
                url: url,
                program: program.name,
                leaseDuration: settings.claimLease,
                idempotencyTTL: idempotencyTTL,
                logger: logger
            )
        }
    }
}
