import ArgumentParser
import Composition
import Foundation
import Logging
import MailModel
import PostgresQueue
import Queue
import QueueStores
import Settings

#if canImport(Glibc)
import Glibc
#endif

/// mailctl: the operator's command for the queue, safe beside both running daemons: every
/// change goes through the queue store's own operations (`QueueStore`'s administration
/// part), so a hold, delete or requeue never races a worker's claim into a duplicate.
///
/// Exit codes: 0 done, 1 some items failed (each named on standard error), 2 usage.
@main
struct MailCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mailctl",
        abstract: "Inspect and act on the mail queue (like postqueue, postsuper and qshape).",
        discussion:
            "Settings (DATA_DIR, SENDER_EMAIL) come from the environment and the --env-file, as for the daemons.",
        subcommands: [
            QueueCommand.self, ShowCommand.self, RequeueCommand.self, DeleteCommand.self, FlushCommand.self,
            HoldCommand.self, ReleaseCommand.self, StatsCommand.self, SuppressionsCommand.self, EventsCommand.self,
        ]
    )

    func run() async throws {
        throw ValidationError("name a subcommand")
    }

    /// ArgumentParser's main, with its usage errors exiting 2 (as POSIX tools do) instead of 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            let message = fullMessage(for: error)
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            Glibc.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

/// Options every subcommand takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "A dotenv file read after the environment (missing is fine).")
    var envFile = ".env"

    @Flag(help: "Print JSON for scripts instead of text.")
    var json = false
}

/// What a subcommand works with: the settings, the queue store and a composer.
struct Context {
    let settings: MailSettings
    let queue: any QueueStore
    let composer: MessageComposer

    /// - Throws: `ExitCode(2)` when the settings are invalid (already printed).
    static func open(_ options: CommonOptions) async throws -> Context {
        let settings: MailSettings
        do {
            guard let read = try await SettingsCheck(envFile: options.envFile, checkConfig: false).settings(for: .admin)
            else { throw ExitCode(2) }
            settings = read
        } catch is SettingsCheck.Refused {
            throw ExitCode(2)
        }
        // A read or a change of a queue that is not there would make an empty one here.
        guard settings.queueStore != .file || FileManager.default.fileExists(atPath: settings.layout.queue) else {
            printError(
                "mailctl: no queue at \(settings.layout.queue): run mailctl where the daemons run, or set DATA_DIR"
            )
            throw ExitCode(2)
        }
        var logger = Logger(label: "mailctl")
        logger.logLevel = .warning
        // The same store the daemons use.
        let queue: any QueueStore
        do {
            queue = try QueueStores.open(settings, program: .admin, logger: logger)
        } catch let error as DatabaseError {
            printError("mailctl: \(error)")
            throw ExitCode(1)
        }
        return Context(settings: settings, queue: queue, composer: MessageComposer(sender: settings.sender))
    }
}

/// Prints `value` as JSON (sorted keys, ISO 8601 dates) on standard output.
func printJSON(_ value: some Encodable) throws {
    let encoder = QueueCoding.encoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Writes `line` on standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// The outcome of acting on several emails: each one's result, and the exit code (1 when any failed).
struct ActionReport: Encodable {
    struct Item: Encodable {
        let request_id: String
        let ok: Bool
        /// The state after the action, or the one that prevented it.
        let state: String?
        let error: String?

        /// Every key always present (null when there is nothing), so scripts need not guess.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(request_id, forKey: .request_id)
            try c.encode(ok, forKey: .ok)
            try c.encode(state, forKey: .state)
            try c.encode(error, forKey: .error)
        }

        enum CodingKeys: String, CodingKey { case request_id, ok, state, error }
    }

    var items: [Item] = []

    mutating func record(_ id: String, _ outcome: AdminOutcome, verb: String) {
        switch outcome {
        case .done(let record):
            items.append(Item(request_id: id, ok: true, state: record.state.rawValue, error: nil))
        case .notInState(let record):
            items.append(
                Item(
                    request_id: id,
                    ok: false,
                    state: record.state.rawValue,
                    error: "cannot \(verb) an email that is \(record.state.rawValue)"
                )
            )
        case .notFound:
            items.append(Item(request_id: id, ok: false, state: nil, error: "no email has this id"))
        }
    }

    /// Applies `action` to each id in turn, recording each outcome (a thrown error fails that id only).
    static func each(_ ids: [String], verb: String, _ action: (String) throws -> AdminOutcome) -> ActionReport {
        var report = ActionReport()
        for id in ids {
            do { report.record(id, try action(id), verb: verb) } catch { report.failed(id, error) }
        }
        return report
    }

    mutating func failed(_ id: String, _ error: any Error) {
        items.append(Item(request_id: id, ok: false, state: nil, error: "\(error)"))
    }

    /// Prints the report (text: one line per failure on standard error, a summary on
    /// standard output) and throws `ExitCode(1)` when any item failed.
    func finish(json: Bool, verb: String) throws {
        if json {
            try printJSON(self)
        } else {
            for item in items where !item.ok { printError("\(item.request_id): \(item.error ?? "failed")") }
            let done = items.filter(\.ok).count
            print("\(verb): \(done) of \(items.count)")
        }
        if items.contains(where: { !$0.ok }) { throw ExitCode(1) }
    }
}
