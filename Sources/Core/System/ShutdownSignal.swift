import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Waits for SIGTERM or SIGINT (Ctrl-C). Their default action (terminate at once) is turned
/// off and a dispatch signal source observes them instead, so the caller can stop cleanly.
public enum ShutdownSignal {
    /// Returns the signal's name once SIGTERM or SIGINT arrives.
    public static func wait() async -> String {
        await withCheckedContinuation { continuation in
            let queue = DispatchQueue(label: "shutdown-signal")
            var sources: [DispatchSourceSignal] = []
            let resumed = ManagedFlag()
            for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler {
                    guard resumed.set() else { return }
                    for source in sources { source.cancel() }
                    continuation.resume(returning: name)
                }
                source.resume()
                sources.append(source)
            }
        }
    }

    private final class ManagedFlag: @unchecked Sendable {
        private var isSet = false
        /// Sets the flag; true only for the first caller. Called on one serial queue.
        func set() -> Bool {
            defer { isSet = true }
            return !isSet
        }
    }
}
