import ArgumentParser
import Foundation
import MailModel
import Queue

/// `mailctl requeue`: dead letters back in the queue, retries reset.
struct RequeueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requeue",
        abstract: "Put dead letters back in the queue with their retries reset (postsuper -r).",
        discussion: "With --dead-letters, every dead letter (filtered by --since and --reason), at --rate."
    )

    @OptionGroup var options: CommonOptions

    @Argument(help: "Request ids of dead letters.")
    var ids: [String] = []

    @Flag(help: "Every dead letter (and any requeue a crash interrupted).")
    var deadLetters = false

    @Option(help: "With --dead-letters: only those given up since this (an age such as 2h, or an RFC 3339 time).")
    var since: TimeArgument?

    @Option(help: "With --dead-letters: only those whose reason contains this text (case-insensitive).")
    var reason: String?

    @Option(help: "Emails a second at most (50/s, 600/m, or a number per second).")
    var rate: RateArgument?

    func validate() throws {
        if deadLetters == !ids.isEmpty { throw ValidationError("give request ids or --dead-letters (one of the two)") }
        if !deadLetters, since != nil || reason != nil {
            throw ValidationError("--since and --reason go with --dead-letters")
        }
    }

    func run() async throws {
        let context = try await Context.open(options)
        var targets = ids
        if deadLetters {
            let letters = try context.queue.list(states: [.deadLetter], now: Date()).filter { record in
                (since.map { (record.finishedAt ?? .distantPast) >= $0.date } ?? true)
                    && (reason.map { record.deadLetter?.reason.lowercased().contains($0.lowercased()) ?? false } ?? true)
            }
            targets = try context.queue.interruptedRequeues() + letters.map(\.email.requestID)
        }
        var report = ActionReport()
        let interval = rate.map { 1 / $0.perSecond } ?? 0
        let started = Date()
        for (index, id) in targets.enumerated() {
            // Paced from the start, so the rate holds on average whatever each requeue costs.
            let due = started.addingTimeInterval(Double(index) * interval)
            if due > Date() { try await Task.sleep(for: .seconds(due.timeIntervalSinceNow)) }
            do { report.record(id, try context.queue.requeue(requestID: id, now: Date()), verb: "requeue") } catch {
                report.failed(id, error)
            }
            if deadLetters, !options.json, isatty(2) != 0 || (index + 1) % 100 == 0 || index + 1 == targets.count {
                FileHandle.standardError.write(Data("\rrequeued \(index + 1) of \(targets.count)".utf8))
            }
        }
        if deadLetters, !options.json, !targets.isEmpty { printError("") }
        try report.finish(json: options.json, verb: "requeued")
    }
}

/// `mailctl delete`: emails removed for good (never one being sent).
struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete waiting, held or dead-lettered emails (postsuper -d); asks first unless --yes.",
        discussion: "An email being sent is not deleted (exit 1, named); a delete racing a claim: one of them wins."
    )

    @OptionGroup var options: CommonOptions

    @Argument(help: "Request ids.")
    var ids: [String] = []

    @Flag(help: "Every dead letter (filtered by --before).")
    var deadLetters = false

    @Option(help: "With --dead-letters: only those given up before this (an age such as 7d, or an RFC 3339 time).")
    var before: TimeArgument?

    @Flag(help: "Do not ask for confirmation.")
    var yes = false

    func validate() throws {
        if deadLetters == !ids.isEmpty { throw ValidationError("give request ids or --dead-letters (one of the two)") }
        if !deadLetters, before != nil { throw ValidationError("--before goes with --dead-letters") }
    }

    func run() async throws {
        let context = try await Context.open(options)
        var targets = ids
        if deadLetters {
            targets = try context.queue.list(states: [.deadLetter], now: Date()).filter { record in
                before.map { (record.finishedAt ?? .distantFuture) < $0.date } ?? true
            }.map(\.email.requestID)
        }
        if !yes, !targets.isEmpty {
            FileHandle.standardError.write(
                Data("Delete \(targets.count) email\(targets.count == 1 ? "" : "s") for good? [y/N] ".utf8)
            )
            let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased()
            guard answer == "y" || answer == "yes" else {
                printError("not deleted (not confirmed; --yes skips the question)")
                var report = ActionReport()
                for id in targets { report.failed(id, ValidationError("not confirmed")) }
                if options.json { try printJSON(report) }
                throw ExitCode(1)
            }
        }
        try ActionReport.each(targets, verb: "delete") { try context.queue.delete(requestID: $0, now: Date()) }
            .finish(json: options.json, verb: "deleted")
    }
}

/// `mailctl flush`: every deferred email due now.
struct FlushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flush",
        abstract: "Make every deferred email due now (postqueue -f), or the ones named."
    )

    @OptionGroup var options: CommonOptions

    @Argument(help: "Request ids (default: every deferred email).")
    var ids: [String] = []

    func run() async throws {
        let context = try await Context.open(options)
        let targets =
            ids.isEmpty ? try context.queue.list(states: [.deferred], now: Date()).map(\.email.requestID) : ids
        try ActionReport.each(targets, verb: "flush") { try context.queue.flush(requestID: $0, now: Date()) }
            .finish(json: options.json, verb: "flushed")
    }
}

/// `mailctl hold`: emails kept out of delivery until released.
struct HoldCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hold",
        abstract: "Keep scheduled, queued or deferred emails out of delivery until released (postsuper -h)."
    )

    @OptionGroup var options: CommonOptions

    @Argument(help: "Request ids.")
    var ids: [String]

    func run() async throws {
        let context = try await Context.open(options)
        try ActionReport.each(ids, verb: "hold") { try context.queue.hold(requestID: $0, now: Date()) }
            .finish(json: options.json, verb: "held")
    }
}

/// `mailctl release`: held emails back to delivery.
struct ReleaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Put held emails back to be delivered (postsuper -H)."
    )

    @OptionGroup var options: CommonOptions

    @Argument(help: "Request ids.")
    var ids: [String]

    func run() async throws {
        let context = try await Context.open(options)
        try ActionReport.each(ids, verb: "release") { try context.queue.releaseHeld(requestID: $0, now: Date()) }
            .finish(json: options.json, verb: "released")
    }
}
