/// A configuration value that cannot be used. The programs print it and exit at start;
/// they never run on a silent default.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The environment variable, e.g. `NUM_WORKERS`.
    public let variable: String
    /// What is wrong and what is expected.
    public let problem: String

    public init(_ variable: String, _ problem: String) {
        self.variable = variable
        self.problem = problem
    }

    public var description: String { "\(variable): \(problem)" }
}
