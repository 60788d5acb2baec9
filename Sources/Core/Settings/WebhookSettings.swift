import Delivery
import Foundation
import MailModel

/// `WEBHOOK_URL`, `WEBHOOK_SECRET`, `WEBHOOK_EVENTS` and `WEBHOOK_RETRY_SCHEDULE`: where
/// mailworkerd sends delivery events, signed as Standard Webhooks says.
public struct WebhookSettings: Sendable {
    /// https, or http to this host only.
    public var url: String
    /// The secret's bytes (`whsec_` followed by their base64).
    public var key: [UInt8]
    /// The event types sent; the others are dropped.
    public var events: Set<DeliveryEvent.Kind>
    /// Seconds before each retry after a failed attempt; after the last, the event is kept in
    /// `data/events/failed/` (Resend's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
    public var schedule: [TimeInterval]

    public static let defaultSchedule: [TimeInterval] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000]

    /// The settings from `env`, nil without `WEBHOOK_URL`; every problem reported by name.
    static func read(_ env: EnvironmentReader) -> WebhookSettings? {
        let url = env.string("WEBHOOK_URL")
        let secret = env.string("WEBHOOK_SECRET", isSecret: true)
        let events = env.string("WEBHOOK_EVENTS")
        let schedule = env.string("WEBHOOK_RETRY_SCHEDULE")
        guard let url else {
            if secret != nil { env.report("WEBHOOK_SECRET", "given without WEBHOOK_URL") }
            return nil
        }
        var valid = true
        if let problem = urlProblem(url) {
            env.report("WEBHOOK_URL", problem)
            valid = false
        }
        var key: [UInt8] = []
        if let secret {
            if secret.hasPrefix("whsec_"), let decoded = Data(base64Encoded: String(secret.dropFirst(6))),
                decoded.count >= 16
            {
                key = Array(decoded)
            } else {
                env.report(
                    "WEBHOOK_SECRET",
                    "must be whsec_ followed by at least 16 bytes in base64 (Standard Webhooks)"
                )
                valid = false
            }
        } else {
            env.report("WEBHOOK_SECRET", "required with WEBHOOK_URL: every event is signed")
            valid = false
        }
        var kinds = Set(DeliveryEvent.Kind.allCases)
        if let events {
            kinds = []
            for name in events.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
            where !name.isEmpty {
                let full = name.hasPrefix("email.") ? name : "email." + name
                guard let kind = DeliveryEvent.Kind(rawValue: full) else {
                    let known = DeliveryEvent.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                    env.report("WEBHOOK_EVENTS", "\(name) is not an event type (\(known))")
                    valid = false
                    continue
                }
                kinds.insert(kind)
            }
        }
        var delays = defaultSchedule
        if let schedule {
            let parsed = schedule.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            if parsed.isEmpty || parsed.contains(where: { $0 == nil || $0! < 0 || $0! > 7 * 86_400 }) {
                env.report("WEBHOOK_RETRY_SCHEDULE", "must be seconds, comma-separated (e.g. 5,300,1800)")
                valid = false
            } else {
                delays = parsed.map { $0! }
            }
        }
        return valid ? WebhookSettings(url: url, key: key, events: kinds, schedule: delays) : nil
    }

    /// Why `url` cannot receive events: not https, or http to anywhere but this host.
    static func urlProblem(_ url: String) -> String? {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), let host = parsed.host,
            !host.isEmpty
        else { return "\"\(url)\" is not a URL" }
        if scheme == "https" { return nil }
        if scheme == "http", SMTPSettings.isLoopback(host) { return nil }
        return "must be https (http only to this host: 127.0.0.1, ::1, localhost)"
    }
}
