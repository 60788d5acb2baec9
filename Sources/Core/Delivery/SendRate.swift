import Foundation
import Synchronization

/// How fast the pool may start attempts: a token bucket (`SMTP_MAX_RATE` messages a second
/// across every worker; 0: no limit) that a relay's "slow down" halves and time restores.
/// A 421 or 454 to MAIL, RCPT or DATA that says "rate" or "too many" is the relay asking for
/// fewer messages a second (Amazon SES answers 454 "Throttling failure: Maximum sending rate
/// exceeded"), so the whole pool slows down instead of each email spending its retries:
/// multiplicative decrease (halve, at most once a second), then slow recovery (a quarter more
/// every 5 s after 10 s without a throttle) up to the configured rate, or back to no limit.
public final class SendRate: Sendable {
    /// `SMTP_MAX_RATE`, messages a second; nil: unlimited.
    public let configured: Double?

    private struct State {
        /// The rate now; nil: unlimited.
        var limit: Double?
        var tokens: Double
        var refilled: ContinuousClock.Instant
        var lastThrottle: ContinuousClock.Instant?
        var lastRecovery: ContinuousClock.Instant?
        /// When throttled from no limit: the rate it was halved from (recovered beyond it, the
        /// limit is lifted again).
        var ceiling: Double?
        /// Attempts admitted in each tenth of a second of the last 5 s, to know the rate to
        /// halve from when there was no limit: a ring by tick, constant time and memory (a
        /// list of every admission's time, scanned at each one, took a fifth of mailworkerd's
        /// CPU at 4,000 emails/s, under the lock every worker takes).
        var admitted = [Int](repeating: 0, count: SendRate.window)
        var lastTick: Int64 = 0

        /// Moves the ring to `tick`, emptying the slots of the ticks passed.
        mutating func advance(to tick: Int64) {
            guard tick > lastTick else { return }
            for passed in (lastTick + 1)...(lastTick + min(tick - lastTick, Int64(SendRate.window))) {
                admitted[SendRate.slot(passed)] = 0
            }
            lastTick = tick
        }

        mutating func count(at tick: Int64) {
            advance(to: tick)
            if lastTick - tick < Int64(SendRate.window) { admitted[SendRate.slot(tick)] += 1 }
        }

        /// Admissions a second over the last 5 s.
        mutating func observed(at tick: Int64) -> Double {
            advance(to: tick)
            return Double(admitted.reduce(0, +)) / 5
        }
    }

    /// Ticks of 100 ms in the 5 s window.
    fileprivate static let window = 50

    fileprivate static func slot(_ tick: Int64) -> Int {
        Int(((tick % Int64(window)) + Int64(window)) % Int64(window))
    }

    /// The instant ticks count from.
    private let origin: ContinuousClock.Instant = .now

    private func tick(_ now: ContinuousClock.Instant) -> Int64 {
        let (seconds, attoseconds) = (now - origin).components
        return seconds * 10 + attoseconds / 100_000_000_000_000_000  // 10^17 attoseconds: 100 ms
    }

    private let state: Mutex<State>

    /// - Parameter perSecond: `SMTP_MAX_RATE`; 0 or less: no limit.
    public init(perSecond: Double) {
        configured = perSecond > 0 ? perSecond : nil
        state = Mutex(State(limit: configured, tokens: 1, refilled: .now))
    }

    /// Takes a token for one attempt: nil to go now, or the seconds to wait before asking again.
    public func admit(now: ContinuousClock.Instant = .now) -> Double? {
        state.withLock { state in
            recover(&state, now: now)
            guard let limit = state.limit else {
                state.count(at: tick(now))
                return nil
            }
            let elapsed = Self.seconds(now - state.refilled)
            state.tokens = min(max(1, limit), state.tokens + elapsed * limit)
            state.refilled = now
            if state.tokens >= 1 {
                state.tokens -= 1
                state.count(at: tick(now))
                return nil
            }
            return (1 - state.tokens) / limit
        }
    }

    /// The relay asked to slow down: halves the rate (from the rate of the last 5 s when there
    /// was no limit), at most once a second however many workers were told at once.
    /// - Returns: whether this call lowered the rate (false: another throttle did within the
    ///   second).
    @discardableResult
    public func slowDown(now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            if let last = state.lastThrottle, now - last < .seconds(1) { return false }
            let observed = state.observed(at: tick(now))
            let from = state.limit ?? max(1, observed)
            if state.limit == nil, configured == nil { state.ceiling = from }
            state.limit = max(0.2, from / 2)
            state.tokens = min(state.tokens, 1)
            state.lastThrottle = now
            state.lastRecovery = now
            return true
        }
    }

    private func recover(_ state: inout State, now: ContinuousClock.Instant) {
        guard let limit = state.limit, let throttled = state.lastThrottle, now - throttled > .seconds(10),
            let last = state.lastRecovery, now - last >= .seconds(5)
        else { return }
        let raised = limit * 1.25
        state.lastRecovery = now
        if let configured {
            state.limit = min(configured, raised)
            if raised >= configured { state.lastThrottle = nil }
        } else if raised >= (state.ceiling ?? .infinity) {
            state.limit = nil  // back to no limit
            state.lastThrottle = nil
            state.ceiling = nil
        } else {
            state.limit = raised
        }
    }

    /// The rate now (nil: unlimited), and whether a relay's throttle lowered it.
    public var current: (perSecond: Double?, throttled: Bool) {
        state.withLock { state in
            let lowered = state.lastThrottle != nil && state.limit != configured
            return (state.limit, lowered)
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (whole, fraction) = duration.components
        return Double(whole) + Double(fraction) / 1e18
    }
}
