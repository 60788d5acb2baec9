/// Suggestions for setting names that no program reads (usually typos).
public enum SettingNames {
    /// The SMTP relay's settings: only mailworkerd reads them (mailfcgi withholds them).
    public static let relay: Set<String> = [
        "SMTP_SERVER", "PORT", "PASSWORD", "SMTP_USERNAME", "SMTP_TLS", "SMTP_CA_FILE", "SMTP_TLS_VERIFY",
        "SMTP_CONNECT_TIMEOUT", "SMTP_TIMEOUT",
    ]

    /// The DKIM signing settings: only mailworkerd reads them, so the key never enters mailfcgi.
    public static let signing: Set<String> = ["DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_PRIVATE_KEY_FILE"]

    /// The webhook's settings (its secret signs every event): mailworkerd only.
    public static let webhook: Set<String> = [
        "WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_EVENTS", "WEBHOOK_RETRY_SCHEDULE",
    ]

    /// What mailfcgi withholds: the relay's, the signing and the webhook's settings.
    public static let workerOnly = relay.union(signing).union(webhook)

    /// The known name an unknown `name` most likely meant, or nil when none is close.
    ///
    /// A known name made of some of the unknown one's words, or the other way round, wins
    /// (`SMTP_PORT` -> `PORT`, `WORKERS` -> `NUM_WORKERS`); otherwise the nearest by edit
    /// distance, if within a third of the name's length (`NUM_WORKER` -> `NUM_WORKERS`).
    static func closest(to name: String, among known: Set<String>) -> String? {
        let upper = name.uppercased()
        let words = Set(upper.split(separator: "_"))
        let byDistance = known.sorted().map { ($0, distance(upper, $0)) }
        let related = byDistance.filter { candidate, _ in
            let theirs = Set(candidate.split(separator: "_"))
            return !theirs.isDisjoint(with: words) && (theirs.isSubset(of: words) || words.isSubset(of: theirs))
        }
        if let best = related.min(by: { $0.1 < $1.1 }) { return best.0 }
        guard let best = byDistance.min(by: { $0.1 < $1.1 }), best.1 <= max(2, upper.count / 3) else { return nil }
        return best.0
    }

    /// Levenshtein distance between two names.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        var previous = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
