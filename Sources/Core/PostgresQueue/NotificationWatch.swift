import Foundation
import Logging
import Platform
import Queue
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Wakes claimants when emails arrive: a connection of its own that LISTENs on the channel
/// every enqueue notifies (`pg_notify` in the enqueue's transaction, so the notification
/// comes with the commit). The worker pool's polling stays the fallback: a notification
/// sent while this connection was being re-made is missed, and the next poll finds the email.
final class NotificationWatch: ArrivalWatch {
    private let pool: ConnectionPool
    private let channel: String
    private let logger: Logger
    private let arrived: @Sendable () -> Void
    private let state = Mutex<(stopping: Bool, thread: BackgroundThread?)>((false, nil))

    init(pool: ConnectionPool, channel: String, logger: Logger, _ arrived: @escaping @Sendable () -> Void) {
        self.pool = pool
        self.channel = channel
        self.logger = logger
        self.arrived = arrived
    }

    func start() {
        state.withLock { state in
            guard state.thread == nil else { return }
            state.thread = BackgroundThread(name: "listen") { [self] in loop() }
        }
    }

    func stop() async {
        let thread = state.withLock { state -> BackgroundThread? in
            state.stopping = true
            return state.thread
        }
        await thread?.join()
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func loop() {
        var failures = 0
        while !stopping {
            do {
                let connection = try pool.dedicated()
                try connection.execute("LISTEN \(channel)")
                if failures > 0 { logger.notice("listening for arrivals again") }
                failures = 0
                arrived()  // whatever arrived while not listening
                while !stopping {
                    var poller = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
                    let ready = poll(&poller, 1, 250)
                    if ready < 0, errno != EINTR { break }
                    if ready > 0, !(try connection.notifications()).isEmpty { arrived() }
                    if connection.isBroken { break }
                }
            } catch {
                failures += 1
                if failures == 1 {
                    logger.warning("cannot listen for arrivals; polling meanwhile", metadata: ["error": "\(error)"])
                }
                usleep(UInt32(min(5.0, 0.25 * Double(failures)) * 1_000_000))
            }
        }
    }
}
