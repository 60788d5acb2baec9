import Foundation

/// Both daemons' start-up settings check, for their `--env-file` and `--check-config`
/// options (which the executables parse; this library parses no arguments).
public struct SettingsCheck: Sendable {
    /// The dotenv file read after the environment (missing is fine).
    public var envFile: String
    /// Print the verdict and stop instead of running.
    public var checkConfig: Bool

    public init(envFile: String, checkConfig: Bool) {
        self.envFile = envFile
        self.checkConfig = checkConfig
    }

    /// The settings were refused; every problem has been printed on standard error.
    public struct Refused: Error, CustomStringConvertible {
        public var description: String { "the settings named above are invalid" }
    }

    /// Names that only `make run` (scripts/run.sh) reads from the same `.env`.
    static let runScriptNames: Set<String> = ["MAIL_HTTPS_PORT", "MAIL_DEMO_PASSWORD", "RUN_DIR", "BIN_DIR"]

    /// Reads and checks the settings; nil after `--check-config` has printed its verdict.
    /// Names in the `.env` file that no program reads are warned about on standard error,
    /// with the closest known name.
    /// - Throws: `Refused` after printing every bad setting on standard error (the program
    ///   then exits 1, with no usage text: the command line is not what is wrong).
    /// mailfcgi (`.responder`) withholds the relay's settings: they are neither read nor kept,
    /// and finding them in its process environment is warned about.
    public func settings(for program: MailSettings.Program) async throws -> MailSettings? {
        let settings: MailSettings
        let withheld = program == .worker ? [] : SettingNames.workerOnly
        let exposed = ProcessInfo.processInfo.environment.keys.filter(withheld.contains).sorted()
        if program == .responder, !exposed.isEmpty {
            Self.printError(
                "warning: the environment gives mailfcgi \(exposed.joined(separator: ", ")), which only mailworkerd "
                    + "reads; ignored here. Keep relay settings out of mailfcgi's environment (see README, Security)"
            )
        }
        do {
            let env = try await EnvironmentReader(envFile: envFile, withholding: withheld)
            defer { warnAboutUnreadNames(env, besides: withheld) }  // also when a value is bad: typos explain many
            settings = try MailSettings(env, program: program)
        } catch let error as ConfigError {
            let count = error.problems.count
            Self.printError(
                "\(program.name): configuration: \(count) invalid setting\(count == 1 ? "" : "s"):\n"
                    + error.problems.map { "  \($0.variable): \($0.problem)" }.joined(separator: "\n")
            )
            throw Refused()
        }
        if checkConfig {
            print("\(program.name): configuration OK")
            return nil
        }
        return settings
    }

    private func warnAboutUnreadNames(_ env: EnvironmentReader, besides withheld: Set<String>) {
        for (name, closest) in env.unreadNames(besides: Self.runScriptNames.union(withheld)) {
            Self.printError(
                "warning: \(envFile) sets \(name), which no setting reads"
                    + (closest.map { "; did you mean \($0)?" } ?? "")
            )
        }
    }

    private static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
