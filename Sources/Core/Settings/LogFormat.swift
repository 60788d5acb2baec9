/// The shape of log lines (`LOG_FORMAT`): `text` (the default, for people) or `json` (one
/// object a line, for journald and log shippers).
public enum LogFormat: String, CaseIterable, Sendable {
    case text
    case json
}
