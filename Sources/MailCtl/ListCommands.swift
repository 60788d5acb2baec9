import ArgumentParser
import Foundation
import MailModel
import Queue

extension EmailState: ExpressibleByArgument {}

/// `mailctl queue`: one line per email, like postqueue -p.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "List emails: id, age, size, state, first recipient, last error (postqueue -p)."
    )

    @OptionGroup var options: CommonOptions

    @Option(help: "Only this state (repeatable).")
    var state: [EmailState] = []

    @Option(help: "Only emails to this address, or to any address @DOMAIN.")
    var to: String?

    @Option(help: "Only emails accepted before this: an age (2h, 7d) or an RFC 3339 time.")
    var olderThan: TimeArgument?

    @Option(help: "At most this many lines.")
    var limit: Int?

    struct Line: Encodable {
        let request_id: String
        let state: String
        let created_at: Date
        let age_seconds: Int
        let size_bytes: Int
        let to: String
        let recipients: Int
        let retry_count: Int
        let next_attempt_at: Date?
        let last_error: String?
    }

    func run() async throws {
        let context = try await Context.open(options)
        let now = Date()
        var records = try context.queue.list(states: state.isEmpty ? nil : Set(state), now: now)
        if let to { records = records.filter { Self.matches($0.email, to) } }
        if let olderThan { records = records.filter { $0.email.createdAt < olderThan.date } }
        if let limit { records = Array(records.prefix(max(0, limit))) }
        let lines = records.map { record in
            Line(
                request_id: record.email.requestID,
                state: record.state.rawValue,
                created_at: record.email.createdAt,
                age_seconds: Int(now.timeIntervalSince(record.email.createdAt)),
                size_bytes: context.composer.composedSize(record.email),
                to: record.email.toEmail,
                recipients: record.email.envelopeRecipients.count,
                retry_count: record.email.retryCount,
                next_attempt_at: record.email.nextAttemptAt,
                last_error: record.deadLetter?.reason ?? record.email.lastError
            )
        }
        if options.json { return try printJSON(lines) }
        for line in lines {
            let more = line.recipients > 1 ? " (+\(line.recipients - 1))" : ""
            print(
                "\(line.request_id)  \(Self.age(line.age_seconds).leftPadded(to: 5, with: " "))  "
                    + "\(String(line.size_bytes).leftPadded(to: 8, with: " "))  \(line.state.padding(toLength: 14, withPad: " ", startingAt: 0))  "
                    + "\(line.to)\(more)\(line.last_error.map { "  \($0.prefix(100))" } ?? "")"
            )
        }
        print("-- \(lines.count) email\(lines.count == 1 ? "" : "s")")
    }

    /// Whether `email` goes to `filter`: an address (domain compared without case), or `@domain`.
    static func matches(_ email: QueuedEmail, _ filter: String) -> Bool {
        if filter.hasPrefix("@") {
            let domain = filter.dropFirst().lowercased()
            return email.envelopeRecipients.contains { $0.split(separator: "@").last?.lowercased() == domain }
        }
        let key = QueuedEmail.mailboxKey(filter)
        return email.envelopeRecipients.contains { QueuedEmail.mailboxKey($0) == key }
    }

    /// `42s`, `17m`, `5h`, `3d`.
    static func age(_ seconds: Int) -> String {
        switch seconds {
        case ..<120: "\(max(0, seconds))s"
        case ..<7200: "\(seconds / 60)m"
        case ..<172_800: "\(seconds / 3600)h"
        default: "\(seconds / 86_400)d"
        }
    }
}

/// `mailctl show ID`: the whole record with its attempts; `--message` prints the message.
struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one email's record with every attempt (--message: the composed message, unsigned)."
    )

    @OptionGroup var options: CommonOptions

    @Argument(help: "The email's request id.")
    var id: String

    @Flag(help: "Print the composed message (RFC 5322, as sent but for the DKIM signature).")
    var message = false

    struct Record: Encodable {
        let state: String
        let finished_at: Date?
        let dead_letter_reason: String?
        let dead_letter_kind: String?
        let email: QueuedEmail
    }

    func run() async throws {
        let context = try await Context.open(options)
        guard let record = try context.queue.lookup(requestID: id, now: Date()) else {
            printError("\(id): no email has this id")
            if options.json { try printJSON(["request_id": id, "error": "no email has this id"]) }
            throw ExitCode(1)
        }
        if message {
            let composed = context.composer.compose(record.email)
            if options.json {
                return try printJSON(["request_id": id, "message": String(decoding: composed.data, as: UTF8.self)])
            }
            FileHandle.standardOutput.write(Data(composed.data))
            return
        }
        let shown = Record(
            state: record.state.rawValue,
            finished_at: record.finishedAt,
            dead_letter_reason: record.deadLetter?.reason,
            dead_letter_kind: record.deadLetter?.kind.rawValue,
            email: record.email
        )
        if options.json { return try printJSON(shown) }
        let email = record.email
        print("request id:  \(email.requestID)")
        print("message id:  \(email.messageID)")
        print(
            "state:       \(record.state.rawValue)\(record.deadLetter.map { " (\($0.kind.rawValue): \($0.reason))" } ?? "")"
        )
        print("accepted:    \(Timestamp.iso8601(email.createdAt))\(email.submittedBy.map { " by \($0)" } ?? "")")
        if let sendAt = email.sendAt { print("send at:     \(Timestamp.iso8601(sendAt))") }
        if let next = email.nextAttemptAt, !record.state.isFinal, record.state != .held {
            print("next try:    \(Timestamp.iso8601(next))")
        }
        if let finished = record.finishedAt { print("finished:    \(Timestamp.iso8601(finished))") }
        print("subject:     \(email.subject)")
        print("to:          \(email.toEmail)")
        if !email.cc.isEmpty { print("cc:          \(email.cc.joined(separator: ", "))") }
        if !email.bcc.isEmpty { print("bcc:         \(email.bcc.joined(separator: ", "))") }
        if let tags = email.tags, !tags.isEmpty {
            print("tags:        \(tags.map { "\($0.name)=\($0.value)" }.joined(separator: ", "))")
        }
        for outcome in email.recipients ?? [] {
            print("  \(outcome.address): \(outcome.state.rawValue)\(outcome.reply.map { " (\($0))" } ?? "")")
        }
        print("retries:     \(email.retryCount)")
        for file in email.attachments ?? [] {
            print(
                "attachment:  \(file.filename) (\(file.contentType), \(file.size) bytes\(file.contentID.map { ", inline \($0)" } ?? ""))"
            )
        }
        for attempt in email.attempts {
            print("attempt:     \(Timestamp.iso8601(attempt.at))  \(attempt.error)")
        }
    }
}

/// `mailctl stats`: counts per state, and waiting emails by recipient domain and age, like qshape.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Counts per state, and a recipient-domain by age table of waiting emails (qshape)."
    )

    @OptionGroup var options: CommonOptions

    @Option(help: "Domains shown (the rest are summed as 'others').")
    var top = 20

    func validate() throws {
        if top < 0 { throw ValidationError("--top must be 0 or more") }
    }

    /// qshape's buckets: minutes since acceptance, each the upper bound (the last: older).
    static let buckets = [5, 10, 20, 40, 80, 160, 320, 640, 1280]

    struct Report: Encodable {
        struct Domain: Encodable {
            let domain: String
            let total: Int
            /// Recipients per age bucket: `bucket_minutes`' bounds, then older than the last.
            let by_age: [Int]
        }

        let counts: [String: Int]
        let bucket_minutes: [Int]
        let domains: [Domain]
    }

    func run() async throws {
        let context = try await Context.open(options)
        let now = Date()
        let census = try context.queue.census(limit: 0, now: now)
        let counts = [
            "queued": census.pending, "scheduled": census.scheduled, "deferred": census.deferred,
            "sending": census.processing, "held": census.held, "dead_letter": census.deadLetter,
            "finished": census.trash, "corrupt": census.corrupt,
        ]
        var byDomain: [String: [Int]] = [:]
        for record in try context.queue.list(states: [.queued, .scheduled, .deferred, .held, .sending], now: now) {
            let minutes = Int(now.timeIntervalSince(record.email.createdAt) / 60)
            let bucket = Self.buckets.firstIndex { minutes < $0 } ?? Self.buckets.count
            for address in record.email.pendingRecipients {
                let domain = address.split(separator: "@").last.map { $0.lowercased() } ?? address
                byDomain[domain, default: Array(repeating: 0, count: Self.buckets.count + 1)][bucket] += 1
            }
        }
        var domains = byDomain.map { Report.Domain(domain: $0.key, total: $0.value.reduce(0, +), by_age: $0.value) }
            .sorted { ($0.total, $1.domain) > ($1.total, $0.domain) }
        if domains.count > top {
            let rest = domains[top...]
            let summed = (0...Self.buckets.count).map { i in rest.reduce(0) { $0 + $1.by_age[i] } }
            domains =
                Array(domains.prefix(top)) + [
                    Report.Domain(domain: "others", total: summed.reduce(0, +), by_age: summed)
                ]
        }
        let report = Report(counts: counts, bucket_minutes: Self.buckets, domains: domains)
        if options.json { return try printJSON(report) }
        for (name, count) in counts.sorted(by: { $0.key < $1.key }) {
            print("\(name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(count)")
        }
        print("")
        let header = ["", "T"] + Self.buckets.map(String.init) + ["\(Self.buckets.last!)+"]
        let rows =
            [header]
            + ([
                Report.Domain(
                    domain: "TOTAL",
                    total: domains.reduce(0) { $0 + $1.total },
                    by_age: (0...Self.buckets.count).map { i in domains.reduce(0) { $0 + $1.by_age[i] } }
                )
            ] + domains).map {
                [$0.domain, String($0.total)] + $0.by_age.map(String.init)
            }
        let width = max(12, rows.map { $0[0].count }.max() ?? 0)
        for row in rows {
            print(
                row[0].padding(toLength: width, withPad: " ", startingAt: 0)
                    + row.dropFirst().map { $0.leftPadded(to: 6, with: " ") }.joined()
            )
        }
    }
}
