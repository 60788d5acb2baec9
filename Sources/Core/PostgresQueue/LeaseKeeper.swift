import Foundation
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// Renews the leases of a store's claims every third of `CLAIM_LEASE`, on a thread of its
/// own, so a send that takes longer than the lease keeps its claim while this host can reach
/// the database, and loses it (to another host) once it cannot. Started at the first claim;
/// it lives as long as the process (the daemons hold one store for their whole run).
final class LeaseKeeper: Sendable {
    private let thread: BackgroundThread

    init(store: PostgresQueueStore) {
        let interval = max(0.2, store.leaseDuration / 3)
        thread = BackgroundThread(name: "lease-keeper") { [weak store] in
            var failing = false
            while let store {
                do {
                    try store.renewLeases()
                    if failing { store.logger.notice("claim leases renewed again") }
                    failing = false
                } catch {
                    if !failing {
                        store.logger.error(
                            "cannot renew claim leases; they lapse unless the database comes back",
                            metadata: ["error": "\(error)"]
                        )
                    }
                    failing = true
                }
                usleep(UInt32(interval * 1_000_000))
            }
        }
    }
}
