import ArgumentParser

/// The command-line options both daemons take, and their start-up settings check.
public struct DaemonOptions: ParsableArguments {
    @Option(help: "A dotenv file read after the environment (missing is fine).")
    public var envFile = ".env"

    @Flag(help: "Check the settings, print the first problem, and exit (0 when all are valid).")
    public var checkConfig = false

    public init() {}

    /// Reads and checks the settings; nil after `--check-config` has printed its verdict.
    /// - Throws: `ValidationError` naming the bad variable, which ArgumentParser prints
    ///   before exiting with a failure status.
    public func settings() async throws -> MailSettings? {
        let settings: MailSettings
        do {
            settings = try MailSettings(try await EnvironmentReader(envFile: envFile))
        } catch {
            throw ValidationError("configuration: \(error)")
        }
        if checkConfig {
            print("configuration OK")
            return nil
        }
        return settings
    }
}
