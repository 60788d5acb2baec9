import ArgumentParser
import Foundation
import MailModel
import Queue

/// `mailctl events list|retry`: delivery events for the webhook.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Webhook events: list those waiting or given up, and send given-up ones again.",
        subcommands: [List.self, Retry.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Events waiting (--failed: given up), oldest first.")

        @OptionGroup var options: CommonOptions

        @Flag(help: "The events given up after the last retry, instead of those waiting.")
        var failed = false

        struct Line: Encodable {
            let name: String
            let id: String
            let type: String
            let request_id: String
            let attempts: Int
            let next_attempt_at: Date?
            let last_error: String?
        }

        func run() async throws {
            let context = try await Context.open(options)
            let entries = failed ? try context.queue.events.failed() : try context.queue.events.pending()
            let lines = entries.map {
                Line(
                    name: $0.name,
                    id: $0.event.event.id,
                    type: $0.event.event.type.rawValue,
                    request_id: $0.event.event.requestID,
                    attempts: $0.event.attempts,
                    next_attempt_at: $0.event.nextAttemptAt,
                    last_error: $0.event.lastError
                )
            }
            if options.json { return try printJSON(lines) }
            for line in lines {
                print("\(line.id)  \(line.type)  attempts \(line.attempts)\(line.last_error.map { "  \($0)" } ?? "")")
            }
            print("-- \(lines.count) event\(lines.count == 1 ? "" : "s")")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send given-up events again (every one, or those named by id), attempts reset."
        )

        @OptionGroup var options: CommonOptions

        @Argument(help: "Event ids (default: every given-up event).")
        var ids: [String] = []

        func run() async throws {
            let context = try await Context.open(options)
            let failed = try context.queue.events.failed()
            let chosen = ids.isEmpty ? failed : failed.filter { ids.contains($0.event.event.id) }
            var report = ActionReport()
            let resent = try context.queue.events.resend(chosen.map(\.name))
            for entry in chosen {
                report.items.append(.init(request_id: entry.event.event.id, ok: true, state: "pending", error: nil))
            }
            for id in ids where !chosen.contains(where: { $0.event.event.id == id }) {
                report.items.append(
                    .init(request_id: id, ok: false, state: nil, error: "no given-up event has this id")
                )
            }
            if resent != chosen.count { printError("\(chosen.count - resent) events changed meanwhile") }
            try report.finish(json: options.json, verb: "resent")
        }
    }
}
