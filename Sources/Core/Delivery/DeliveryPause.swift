import Foundation
import MailModel
import Status
import Synchronization

/// The pool-wide pause after failures on the sender's side (relay unreachable, TLS, AUTH
/// refused or missing, a refused greeting), and the sender's health for `/health`.
///
/// A sender-side failure pauses every worker for 1 s; when the pause ends, one worker (the
/// probe) checks the relay with `Transport.probe()` while the others wait. A failed probe
/// doubles the pause, up to `DELIVERY_PAUSE_MAX`. A probe that works ends the pause but not
/// the backoff: if the next send fails on the sender's side again (the relay greets and
/// authenticates but refuses every MAIL FROM with 530, say), the next pause is twice as
/// long, so such a relay is tried at most every `DELIVERY_PAUSE_MAX`, not every second. Only
/// an attempt the relay answers about the email itself (delivered or not) resets it.
/// Emails in flight when a pause begins are put back without spending a retry
/// (`DeliveryPolicy`), so an outage of any length costs no email its retries.
///
/// Timing uses the monotonic clock, so a wall-clock step (NTP at boot) neither stretches nor
/// skips a pause; `SenderHealth.pausedUntil` is the wall-clock time shown to operators.
public final class DeliveryPause: Sendable {
    /// What a worker may do now.
    public enum Admission: Equatable, Sendable {
        /// Deliver.
        case deliver
        /// Probe the relay, then report with `relayAnswered(byProbe: true)` or
        /// `senderFailed(_:probe: true)`.
        case probe
        /// Wait this many seconds at most (or until a wake-up) and ask again.
        case wait(seconds: Double)
    }

    private struct State {
        var health = SenderHealth()
        /// The last pause's length in seconds; 0 once an attempt reached the relay.
        var delay: Double = 0
        /// When the current pause ends; nil when not paused.
        var resumeAt: ContinuousClock.Instant?
        /// When an attempt last reached the relay (it answered about an email).
        var lastAnswer: ContinuousClock.Instant?
        var probing = false
    }

    /// `DELIVERY_PAUSE_MAX` seconds.
    public let maxDelay: Double
    private let state = Mutex(State())

    /// - Parameter maxDelay: `DELIVERY_PAUSE_MAX` seconds.
    public init(maxDelay: Double) {
        self.maxDelay = maxDelay
    }

    public func admit(now: ContinuousClock.Instant = .now) -> Admission {
        state.withLock { state in
            guard let resumeAt = state.resumeAt else { return .deliver }
            if state.probing { return .wait(seconds: min(1, state.delay)) }
            if now < resumeAt { return .wait(seconds: Self.seconds(resumeAt - now)) }
            state.probing = true
            return .probe
        }
    }

    /// A failure on the sender's side. Starts a pause 1 s long, or twice the last one after
    /// a failed probe or a failure right after a probe that worked; failures of sends already
    /// in flight while paused do not lengthen it.
    public func senderFailed(
        _ error: DeliveryError,
        probe: Bool,
        now: ContinuousClock.Instant = .now,
        wallClock: Date = Date()
    ) {
        state.withLock { state in
            state.health.healthy = false
            state.health.lastAttemptAt = wallClock
            state.health.lastError = error.description
            if state.resumeAt != nil, !probe { return }  // already paused: a send in flight
            state.delay = state.delay == 0 ? 1 : min(maxDelay, state.delay * 2)
            state.probing = false
            state.resumeAt = now + .seconds(state.delay)
            state.health.pausedUntil = wallClock.addingTimeInterval(state.delay)
        }
    }

    /// The relay answered: a probe worked (`byProbe`), or an attempt reached it about the
    /// email (`delivered` or refused, the relay is there). Ends the pause; only an attempt
    /// resets the backoff. Returns whether a pause was ended (to wake the workers).
    @discardableResult
    public func relayAnswered(
        delivered: Bool,
        byProbe: Bool = false,
        now: ContinuousClock.Instant = .now,
        wallClock: Date = Date()
    ) -> Bool {
        state.withLock { state in
            if !byProbe { state.lastAnswer = now }
            let wasPaused = state.resumeAt != nil
            state.health.healthy = true
            state.health.lastError = nil
            state.health.pausedUntil = nil
            state.health.lastAttemptAt = wallClock
            if delivered { state.health.lastSuccessAt = wallClock }
            if !byProbe { state.delay = 0 }
            state.resumeAt = nil
            state.probing = false
            return wasPaused
        }
    }

    public var health: SenderHealth {
        state.withLock { $0.health }
    }

    /// What an attempt did to the pause (`note(_:)`).
    public enum Change: Equatable, Sendable {
        case none
        /// A sender-side failure started a pause.
        case paused
        /// The relay answered while paused: the pause ended (wake the waiting workers).
        case resumed
    }

    /// Feeds one attempt's result: a sender-side failure starts a pause (or, while one runs,
    /// is a send that was in flight); any answer from the relay ends one. An email that was
    /// not attempted (it expired) changes nothing.
    @discardableResult
    public func note(_ attempt: DeliveryAgent.Attempt) -> Change {
        guard attempt.attempted else { return .none }
        if let error = attempt.error, error.scope == .sender {
            let wasPaused = isPaused
            senderFailed(error, probe: false)
            return wasPaused ? .none : .paused
        }
        return relayAnswered(delivered: attempt.error == nil) ? .resumed : .none
    }

    /// Whether an attempt reached the relay after `instant`: then a sender-side failure of a
    /// new connection begun about then (a 421 "too many connections" at greeting) is that
    /// connection's, not the relay's, and pauses only its worker.
    public func relayAnswered(since instant: ContinuousClock.Instant) -> Bool {
        state.withLock { $0.lastAnswer.map { $0 > instant } ?? false }
    }

    /// Whether delivery is paused now.
    public var isPaused: Bool {
        state.withLock { $0.resumeAt != nil }
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (whole, fraction) = duration.components
        return Double(whole) + Double(fraction) / 1e18
    }
}
