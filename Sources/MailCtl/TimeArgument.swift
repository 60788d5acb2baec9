import ArgumentParser
import Foundation

/// A point in time on the command line: an age (`90s`, `30m`, `2h`, `7d`: that long ago) or
/// an RFC 3339 date-time (`2026-12-01T09:00:00Z`).
struct TimeArgument: ExpressibleByArgument {
    let date: Date

    init?(argument: String) {
        if let date = (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(argument))
            ?? (try? Date.ISO8601FormatStyle().parse(argument))
        {
            self.date = date
            return
        }
        guard let seconds = Self.seconds(argument) else { return nil }
        date = Date().addingTimeInterval(-seconds)
    }

    /// `90s`, `30m`, `2h`, `7d` in seconds.
    static func seconds(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let number = Double(text.dropLast()), number >= 0 else { return nil }
        switch unit {
        case "s": return number
        case "m": return number * 60
        case "h": return number * 3600
        case "d": return number * 86_400
        default: return nil
        }
    }

    static var defaultValueDescription: String { "an age (30m, 2h, 7d) or an RFC 3339 time" }
}

/// A rate on the command line: `50/s`, `10/m`, or a number (per second).
struct RateArgument: ExpressibleByArgument {
    let perSecond: Double

    init?(argument: String) {
        let parts = argument.split(separator: "/")
        // Between one an hour and a million a second: pacing must fit in a Date.
        guard let number = Double(parts.first ?? ""), number > 0, number.isFinite else { return nil }
        switch parts.count == 2 ? String(parts[1]) : "s" {
        case "s": perSecond = number
        case "m": perSecond = number / 60
        case "h": perSecond = number / 3600
        default: return nil
        }
        guard (1.0 / 3600...1_000_000).contains(perSecond) else { return nil }
    }
}
