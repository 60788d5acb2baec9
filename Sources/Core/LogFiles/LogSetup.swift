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
/// `2026-11-30T06:35:29.123Z info mailfcgi: request_id=… user=demo queued`, or with
/// `LOG_FORMAT=json` one JSON object a line for journald and log shippers (`LogLine.json`).
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
        let format = settings.logFormat
        LoggingSystem.bootstrap { label in
            var file = LineLogHandler(label: label, format: format) { file.write($0) }
            file.logLevel = level
            guard toStderr else { return file }
            var terminal = LineLogHandler(label: label, format: format) { line in
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
    let format: LogFormat
    let write: @Sendable (String) -> Void
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, format: LogFormat, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.format = format
        self.write = write
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        let line = LogLine(
            time: Date(),
            level: event.level,
            component: label,
            message: "\(event.message)",
            metadata: all
        )
        write(format == .json ? line.json : line.text)
    }
}

/// One log event, in the two shapes a line can take (each ending in a newline).
public struct LogLine {
    public var time: Date
    public var level: Logger.Level
    /// The logger's label: `mailfcgi`, `mailworkerd`.
    public var component: String
    public var message: String
    public var metadata: Logger.Metadata

    public init(time: Date, level: Logger.Level, component: String, message: String, metadata: Logger.Metadata) {
        self.time = time
        self.level = level
        self.component = component
        self.message = message
        self.metadata = metadata
    }

    /// `TIME LEVEL COMPONENT: key=value ... message`, keys sorted.
    public var text: String {
        let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "\(Timestamp.iso8601(time)) \(level) \(component): \(fields.isEmpty ? "" : fields + " ")\(message)\n"
    }

    /// One JSON object: `time` (RFC 3339, UTC, milliseconds), `level`, `component`, `message`,
    /// `request_id` and `user` when the event carries them (else absent), and every other
    /// metadata key under `metadata` (strings, arrays and objects as JSON). Keys sorted, no
    /// newline inside, so one line is one event.
    public var json: String {
        var rest = metadata
        var object: [String: Any] = [
            "time": Timestamp.iso8601(time), "level": level.rawValue, "component": component, "message": message,
        ]
        for key in ["request_id", "user"] {
            if let value = rest.removeValue(forKey: key) { object[key] = Self.plain(value) }
        }
        if !rest.isEmpty { object["metadata"] = rest.mapValues(Self.plain) }
        // Every value is a string, array or object of strings: serialization cannot fail.
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private static func plain(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): return text
        case .stringConvertible(let item): return item.description
        case .array(let items): return items.map(plain)
        case .dictionary(let fields): return fields.mapValues(plain)
        }
    }
}
