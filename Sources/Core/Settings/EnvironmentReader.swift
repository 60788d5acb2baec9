import Configuration
import Foundation
import Synchronization
import SystemPackage

/// Reads typed settings by their environment variable names through swift-configuration:
/// the process environment first, then a `.env` file (dotenv format) if one exists.
///
/// Unlike `ConfigReader`'s `default:` accessors, which fall back silently on a value that
/// does not parse, every accessor here records a problem naming the variable (and returns
/// the default only so that reading can go on); `checked()` then throws them all at once.
/// It also remembers which names were asked for, so that names in the `.env` file that no
/// setting reads can be reported (`unreadNames(besides:)`), most often typos.
public struct EnvironmentReader: Sendable {
    private let reader: ConfigReader
    private let record = Record()
    /// The names the `.env` file sets, in file order (empty without a file).
    public let fileNames: [String]

    private final class Record: Sendable {
        let state = Mutex<(problems: [ConfigError.Problem], asked: Set<String>)>(([], []))
    }

    /// - Parameters:
    ///   - envFile: path of the dotenv file; a missing file is fine.
    ///   - withheld: names whose values this program must not hold (mailfcgi: the relay's
    ///     settings, `SettingNames.relay`): dropped from the environment and the file as they
    ///     are read, so no accessor can return them and no copy stays in the reader.
    /// - Throws: `ConfigError` (`ENV_FILE`) when the file exists but cannot be read.
    public init(envFile: String = ".env", withholding withheld: Set<String> = []) async throws {
        let fileNames = (try? String(contentsOfFile: envFile, encoding: .utf8)).map(Self.names(inDotenv:)) ?? []
        let secrets = SecretsSpecifier<String, String>.specific(["PASSWORD"])
        do {
            let file = try await EnvironmentVariablesProvider(
                environmentFilePath: FilePath(envFile),
                allowMissing: true,
                secretsSpecifier: secrets
            )
            if withheld.isEmpty {
                reader = ConfigReader(providers: [EnvironmentVariablesProvider(secretsSpecifier: secrets), file])
            } else {
                // The file's values are copied name by name, less the withheld ones; the
                // provider holding them all is dropped when this scope ends.
                let fromFile = ConfigReader(provider: file)
                var kept: [String: String] = [:]
                for name in fileNames where !withheld.contains(name) {
                    if let value = fromFile.string(forKey: Self.key(name)) { kept[name] = value }
                }
                let environment = ProcessInfo.processInfo.environment.filter { !withheld.contains($0.key) }
                reader = ConfigReader(providers: [
                    EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: secrets),
                    EnvironmentVariablesProvider(environmentVariables: kept, secretsSpecifier: secrets),
                ])
            }
        } catch {
            throw ConfigError("ENV_FILE", "cannot read \(envFile): \(error)")
        }
        self.fileNames = fileNames
    }

    /// A reader over exactly `variables` (tests); `fileNames` stands for a `.env` file's names.
    public init(variables: [String: String], fileNames: [String] = []) {
        reader = ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: variables))
        self.fileNames = fileNames
    }

    /// The names a dotenv text assigns (`NAME=…` or `export NAME=…`), comments skipped.
    static func names(inDotenv text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            var line = line.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("#") { return nil }
            if line.hasPrefix("export ") { line = line.dropFirst(7).drop { $0 == " " } }
            guard let equals = line.firstIndex(of: "=") else { return nil }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces)
            return name.isEmpty ? nil : name
        }
    }

    /// Records a problem found by the caller (a rule across settings, say).
    public func report(_ variable: String, _ problem: String) {
        record.state.withLock { $0.problems.append(ConfigError.Problem(variable: variable, problem: problem)) }
    }

    /// - Throws: `ConfigError` with every problem recorded so far, if any.
    public func checked() throws(ConfigError) {
        let problems = record.state.withLock { $0.problems }
        if !problems.isEmpty { throw ConfigError(problems: problems) }
    }

    /// Names the `.env` file sets that no accessor asked for (nor `besides`), each with the
    /// closest known name when one is close, e.g. `("SMTP_PORT", "PORT")`.
    public func unreadNames(besides others: Set<String> = []) -> [(name: String, closest: String?)] {
        let known = record.state.withLock { $0.asked }.union(others)
        return fileNames.filter { !known.contains($0) }.map { ($0, SettingNames.closest(to: $0, among: known)) }
    }

    /// `NAME` as a config key: swift-configuration joins dotted components with "_" and
    /// upper-cases them, so the lowercase dotted form maps back to the variable exactly.
    private static func key(_ name: String) -> ConfigKey {
        ConfigKey(name.lowercased().split(separator: "_").map(String.init))
    }

    /// The raw value, or nil when unset or empty.
    public func string(_ name: String, isSecret: Bool = false) -> String? {
        record.state.withLock { _ = $0.asked.insert(name) }
        guard let value = reader.string(forKey: Self.key(name), isSecret: isSecret), !value.isEmpty else { return nil }
        return value
    }

    /// Records `problem` for `name` and gives back `fallback`, so reading goes on.
    private func failed<T>(_ name: String, _ problem: String, _ fallback: T) -> T {
        report(name, problem)
        return fallback
    }

    /// An integer within `range`, or `defaultValue` when unset.
    public func int(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
        guard let raw = string(name) else { return defaultValue }
        guard let value = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            return failed(name, "\"\(raw)\" is not a whole number", defaultValue)
        }
        guard range.contains(value) else {
            return failed(name, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)", defaultValue)
        }
        return value
    }

    /// A number of seconds (fractions allowed) within `range`, or `defaultValue` when unset.
    public func seconds(_ name: String, default defaultValue: Double, range: ClosedRange<Double>) -> Double {
        number(name, default: defaultValue, range: range, unit: "seconds")
    }

    /// A number of `unit` (fractions allowed) within `range`, or `defaultValue` when unset.
    public func number(
        _ name: String,
        default defaultValue: Double,
        range: ClosedRange<Double>,
        unit: String
    ) -> Double {
        guard let raw = string(name) else { return defaultValue }
        guard let value = Double(raw.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            return failed(name, "\"\(raw)\" is not a number of \(unit)", defaultValue)
        }
        guard range.contains(value) else {
            return failed(name, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)", defaultValue)
        }
        return value
    }

    /// true/false (also yes/no, on/off, 1/0, any case), or `defaultValue` when unset.
    public func bool(_ name: String, default defaultValue: Bool) -> Bool {
        guard let raw = string(name) else { return defaultValue }
        switch raw.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return failed(name, "\"\(raw)\" is not a boolean (true or false)", defaultValue)
        }
    }

    /// One of an enum's raw values, or `defaultValue` when unset.
    public func choice<T: RawRepresentable & CaseIterable>(_ name: String, default defaultValue: T) -> T
    where T.RawValue == String {
        guard let raw = string(name) else { return defaultValue }
        guard let value = T(rawValue: raw.lowercased()) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            return failed(name, "\"\(raw)\" is not one of: \(allowed)", defaultValue)
        }
        return value
    }
}
