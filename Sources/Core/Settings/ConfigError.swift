/// Configuration values that cannot be used: every one found, not just the first. The
/// programs print them and exit at start; they never run on a silent default.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// One bad setting: the environment variable (e.g. `NUM_WORKERS`) and what is wrong
    /// with it and what is expected.
    public struct Problem: Equatable, Sendable {
        public let variable: String
        public let problem: String
    }

    /// Every bad setting, in the order they were read; never empty.
    public let problems: [Problem]

    /// The first bad setting's variable.
    public var variable: String { problems[0].variable }

    public init(_ variable: String, _ problem: String) {
        problems = [Problem(variable: variable, problem: problem)]
    }

    init(problems: [Problem]) {
        precondition(!problems.isEmpty)
        self.problems = problems
    }

    /// One line per problem: `NUM_WORKERS: "three" is not a whole number`.
    public var description: String {
        problems.map { "\($0.variable): \($0.problem)" }.joined(separator: "\n")
    }
}
