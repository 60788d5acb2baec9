import ArgumentParser
import Foundation
import MailModel
import Queue

/// `mailctl suppressions list|add|remove`: the suppression list, as the API's routes keep it.
struct SuppressionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suppressions",
        abstract: "List, add or remove suppressed addresses (postfix: an access map of REJECT entries).",
        subcommands: [List.self, Add.self, Remove.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every active suppression, by address.")

        @OptionGroup var options: CommonOptions

        func run() async throws {
            let context = try await Context.open(options)
            var all: [Suppression] = []
            var after: String?
            while true {
                let page = try context.queue.suppressions.list(after: after, limit: 1000, now: Date())
                all += page
                guard page.count == 1000, let last = page.last else { break }
                after = last.key
            }
            if options.json { return try printJSON(all) }
            for entry in all {
                let expiry = entry.expiresAt.map { " until \(Timestamp.iso8601($0))" } ?? ""
                print(
                    "\(entry.address)  \(entry.origin.rawValue)  \(Timestamp.iso8601(entry.createdAt))\(expiry)  \(entry.reason)"
                )
            }
            print("-- \(all.count) suppressed")
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Suppress addresses by hand, with a reason.")

        @OptionGroup var options: CommonOptions

        @Option(help: "Why (kept with each address).")
        var reason: String

        @Argument(help: "Addresses.")
        var addresses: [String]

        func run() async throws {
            let context = try await Context.open(options)
            var report = ActionReport()
            let now = Date()
            for address in addresses {
                if let problem = Mailbox.problem(address) {
                    report.failed(address, ValidationError("not an email address: \(problem)"))
                    continue
                }
                let ttl = context.settings.suppressionTTL
                let entry = Suppression(
                    address: address,
                    origin: .manual,
                    reason: reason,
                    createdAt: now,
                    expiresAt: ttl.map { now.addingTimeInterval($0) }
                )
                do {
                    try context.queue.suppressions.add(entry)
                    report.items.append(.init(request_id: address, ok: true, state: "suppressed", error: nil))
                } catch {
                    report.failed(address, error)
                }
            }
            try report.finish(json: options.json, verb: "suppressed")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send to addresses again.")

        @OptionGroup var options: CommonOptions

        @Argument(help: "Addresses.")
        var addresses: [String]

        func run() async throws {
            let context = try await Context.open(options)
            var report = ActionReport()
            for address in addresses {
                do {
                    let removed = try context.queue.suppressions.remove(address: address)
                    report.items.append(
                        .init(
                            request_id: address,
                            ok: removed,
                            state: nil,
                            error: removed ? nil : "not on the suppression list"
                        )
                    )
                } catch {
                    report.failed(address, error)
                }
            }
            try report.finish(json: options.json, verb: "removed")
        }
    }
}
