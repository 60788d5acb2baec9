import Foundation
import Logging
import MailModel
import Platform
import Settings

#if canImport(Glibc)
import Glibc
#endif

/// Process-wide logging on apple/swift-log: each program writes its own rotating file
/// under `LOG_DIR` (`mailfcgi.log`, `mailworkerd.log`), and standard error too when it runs
/// in a terminal (or `LOG_STDERR=true`). Lines read
/// `2026-11-30T06:35:29.123Z info mailfcgi: request_id=… user=demo queued`.
public enum LogSetup {
    /// Installs the handlers; call once, first thing in `main`.
    /// - Parameter fileName: the log file's name in `settings.logDirectory`.
    /// - Throws: `SystemError` when the log directory or file cannot be created.
    public static func bootstrap(_ settings: MailSettings, fileName: String) throws {
        try Syscall.makeDirectories(settings.logDirectory)
        let file = try RotatingLogFile(
            path: settings.logDirectory + "/" + fileName,
            maxBytes: settings.logMaxBytes,
            backups: settings.logBackups
        )
        let toStderr = settings.logToStderr ?? (isatty(STDERR_FILENO) == 1)
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var file = LineLogHandler(label: label) { file.write($0) }
            file.logLevel = level
            guard toStderr else { return file }
            var terminal = LineLogHandler(label: label) { line in
                // One write(2) per line, so lines of several threads do not interleave.
                let bytes = Array(line.utf8)
                _ = bytes.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
            }
            terminal.logLevel = level
            return MultiplexLogHandler([file, terminal])
        }
    }
}

/// A swift-log handler that formats each event as one line and hands it to `write`.
struct LineLogHandler: LogHandler {
    let label: String
    let write: @Sendable (String) -> Void
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.write = write
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let when = Timestamp.iso8601(Date())
        write("\(when) \(event.level) \(label): \(fields.isEmpty ? "" : fields + " ")\(event.message)\n")
    }
}
