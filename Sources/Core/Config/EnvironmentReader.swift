import Configuration
import SystemPackage

/// Reads typed settings by their environment variable names through swift-configuration:
/// the process environment first, then a `.env` file (dotenv format) if one exists.
///
/// Unlike `ConfigReader`'s `default:` accessors, which fall back silently on a value that
/// does not parse, every accessor here throws a `ConfigError` naming the variable.
public struct EnvironmentReader: Sendable {
    private let reader: ConfigReader

    /// - Parameter envFile: path of the dotenv file; a missing file is fine.
    /// - Throws: `ConfigError` (`ENV_FILE`) when the file exists but cannot be read.
    public init(envFile: String = ".env") async throws {
        do {
            let file = try await EnvironmentVariablesProvider(
                environmentFilePath: FilePath(envFile), allowMissing: true,
                secretsSpecifier: .specific(["PASSWORD"]))
            reader = ConfigReader(providers: [EnvironmentVariablesProvider(
                secretsSpecifier: .specific(["PASSWORD"])), file])
        } catch {
            throw ConfigError("ENV_FILE", "cannot read \(envFile): \(error)")
        }
    }

    /// A reader over exactly `variables` (tests).
    public init(variables: [String: String]) {
        reader = ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: variables))
    }

    /// `NAME` as a config key: swift-configuration joins dotted components with "_" and
    /// upper-cases them, so the lowercase dotted form maps back to the variable exactly.
    private func key(_ name: String) -> ConfigKey {
        ConfigKey(name.lowercased().split(separator: "_").map(String.init))
    }

    /// The raw value, or nil when unset or empty.
    public func string(_ name: String, isSecret: Bool = false) -> String? {
        guard let value = reader.string(forKey: key(name), isSecret: isSecret), !value.isEmpty else { return nil }
        return value
    }

    /// An integer within `range`, or `defaultValue` when unset.
    public func int(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let raw = string(name) else { return defaultValue }
        guard let value = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigError(name, "\"\(raw)\" is not a whole number")
        }
        guard range.contains(value) else {
            throw ConfigError(name, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// A number of seconds (fractions allowed) within `range`, or `defaultValue` when unset.
    public func seconds(_ name: String, default defaultValue: Double, range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard let raw = string(name) else { return defaultValue }
        guard let value = Double(raw.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw ConfigError(name, "\"\(raw)\" is not a number of seconds")
        }
        guard range.contains(value) else {
            throw ConfigError(name, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// true/false (also yes/no, on/off, 1/0, any case), or `defaultValue` when unset.
    public func bool(_ name: String, default defaultValue: Bool) throws(ConfigError) -> Bool {
        guard let raw = string(name) else { return defaultValue }
        switch raw.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw ConfigError(name, "\"\(raw)\" is not a boolean (true or false)")
        }
    }

    /// One of an enum's raw values, or `defaultValue` when unset.
    public func choice<T: RawRepresentable & CaseIterable>(_ name: String, default defaultValue: T) throws(ConfigError) -> T
    where T.RawValue == String {
        guard let raw = string(name) else { return defaultValue }
        guard let value = T(rawValue: raw.lowercased()) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigError(name, "\"\(raw)\" is not one of: \(allowed)")
        }
        return value
    }
}
