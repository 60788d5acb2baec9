import Foundation
import MailModel
import Status
import Synchronization

/// The pool-wide pause after failures on the sender's side (relay unreachable, TLS, AUTH,
/// 421), and the sender's health for `/health`.
///
/// A sender-side failure pauses every worker for 1 s; when the pause ends, one worker (the
/// probe) checks the relay with `Transport.probe()` while the others wait. A failed probe
/// doubles the pause, up to `DELIVERY_PAUSE_MAX`; a probe that works, or any delivery that
/// reaches the relay, ends it. Emails in flight when it begins are put back without spending
/// a retry (`DeliveryPolicy`), so an outage of any length costs no email its retries.
public final class DeliveryPause: Sendable {
    /// What a worker may do now.
    public enum Admission: Equatable, Sendable {
        /// Deliver.
        case deliver
        /// Probe the relay, then report with `probeSucceeded()` or `senderFailed(_:probe:)`.
        case probe
        /// Wait until this time (or a wake-up) and ask again.
        case wait(until: Date)
    }

    private struct State {
        var health = SenderHealth()
        /// The current pause's length in seconds; 0 when not paused.
        var delay: Double = 0
        var probing = false
    }

    private let maxDelay: Double
    private let state = Mutex(State())

    /// - Parameter maxDelay: `DELIVERY_PAUSE_MAX` seconds.
    public init(maxDelay: Double) {
        self.maxDelay = maxDelay
    }

    public func admit(now: Date = Date()) -> Admission {
        state.withLock { state in
            guard let until = state.health.pausedUntil else { return .deliver }
            if state.probing { return .wait(until: now.addingTimeInterval(min(1, state.delay))) }
            if now < until { return .wait(until: until) }
            state.probing = true
            return .probe
        }
    }

    /// A failure on the sender's side. Starts a 1 s pause, or, after a failed probe,
    /// doubles it; failures of sends already in flight when a pause began do not lengthen it.
    public func senderFailed(_ error: DeliveryError, probe: Bool, now: Date = Date()) {
        state.withLock { state in
            state.health.healthy = false
            state.health.lastAttemptAt = now
            state.health.lastError = error.description
            if state.delay == 0 {
                state.delay = 1
            } else if probe {
                state.delay = min(maxDelay, state.delay * 2)
            } else {
                return
            }
            if probe { state.probing = false }
            state.health.pausedUntil = now.addingTimeInterval(state.delay)
        }
    }

    /// The relay answered: a probe worked, or an attempt reached it (delivered or not, the
    /// relay is there). Ends the pause. Returns whether one was ended (to wake the workers).
    @discardableResult
    public func relayAnswered(delivered: Bool, now: Date = Date()) -> Bool {
        state.withLock { state in
            let wasPaused = state.health.pausedUntil != nil
            state.health.healthy = true
            state.health.lastError = nil
            state.health.pausedUntil = nil
            state.health.lastAttemptAt = now
            if delivered { state.health.lastSuccessAt = now }
            state.delay = 0
            state.probing = false
            return wasPaused
        }
    }

    public var health: SenderHealth {
        state.withLock { $0.health }
    }
}
