import Logging

/// Process-wide logging on apple/swift-log: one line per event to standard error, with
/// metadata (request id, user) as `key=value`. `LOG_LEVEL` (default info) sets the level.
public enum LogSetup {
    /// Installs the handler; call once, first thing in `main`.
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
