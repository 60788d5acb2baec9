import Foundation

/// A counter plus condition variable: `wait(after:)` returns as soon as `signal()` has been
/// called since the caller read `generation`, so a signal between the check and the wait is
/// never lost.
final class Wakeup: @unchecked Sendable {
    private let condition = NSCondition()
    private var count: UInt64 = 0

    var generation: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return count
    }

    func signal() {
        condition.lock()
        count &+= 1
        condition.broadcast()
        condition.unlock()
    }

    func wait(after seen: UInt64, timeout seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while count == seen, condition.wait(until: deadline) {}
    }
}
