import Foundation
import Testing

@testable import Delivery
@testable import MailModel

/// The retry and lifetime rules, per recipient and per failure scope, without a queue.
@Suite struct DeliveryPolicyTests {
    let policy = DeliveryPolicy(retry: RetryPolicy(maxRetries: 2, baseDelay: 10), maxQueueLifetime: 3600)
    let now = Date()

    func email(cc: [String] = []) -> QueuedEmail {
        var email = queuedEmail(at: now.addingTimeInterval(-60))
        email.cc = cc
        return email
    }

    func reply(_ address: String, _ status: RecipientReply.Status, _ code: Int) -> RecipientReply {
        RecipientReply(address: address, status: status, code: code, reply: "\(code) text")
    }

    @Test func everyoneAcceptingAtOnceNeedsNoRecord() {
        var e = email(cc: ["b@example.com"])
        let decision = policy.decide(
            &e,
            result: .success([reply("u0@example.com", .accepted, 250), reply("b@example.com", .accepted, 250)]),
            at: now
        )
        #expect(decision == .sent(partial: false))
        #expect(e.recipients == nil && e.attempts.isEmpty && e.retryCount == 0)
    }

    @Test func oneRefusedRecipientEndsTheEmailAsPartiallySent() {
        var e = email(cc: ["b@example.com", "c@example.com"])
        let decision = policy.decide(
            &e,
            result: .success([
                reply("u0@example.com", .accepted, 250), reply("b@example.com", .refused, 550),
                reply("c@example.com", .accepted, 250),
            ]),
            at: now
        )
        #expect(decision == .sent(partial: true))
        #expect(e.recipients?.map(\.state) == [.sent, .failed, .sent])
        #expect(e.recipients?[1].code == 550)
        #expect(e.pendingRecipients.isEmpty)
        #expect(e.attempts.count == 1 && e.attempts[0].recipients?.count == 3)
    }

    @Test func aDeferredRecipientIsRetriedAloneAndCountsARetry() {
        var e = email(cc: ["b@example.com"])
        let decision = policy.decide(
            &e,
            result: .success([reply("u0@example.com", .accepted, 250), reply("b@example.com", .deferred, 451)]),
            at: now
        )
        #expect(decision == .retry(notBefore: now.addingTimeInterval(10), counted: true))
        #expect(e.retryCount == 1 && e.pendingRecipients == ["b@example.com"])
        // The retry is accepted: done, and the record says both have it.
        let second = policy.decide(&e, result: .success([reply("b@example.com", .accepted, 250)]), at: now)
        #expect(second == .sent(partial: false))
        #expect(e.recipients?.map(\.state) == [.sent, .sent])
    }

    @Test func senderSideFailuresSpendNoRetryUntilTheLifetimeEnds() {
        var e = email()
        let outage = DeliveryError(.transient, scope: .sender, "Couldn't connect to server")
        for _ in 0..<10 {
            #expect(policy.decide(&e, result: .failure(outage), at: now) == .retry(notBefore: nil, counted: false))
        }
        #expect(e.retryCount == 0 && e.attempts.count == 10)
        #expect(e.attempts.allSatisfy { $0.counted == false && $0.scope == .sender && $0.relaySaw == false })
        let later = now.addingTimeInterval(3600)
        guard case .deadLetter(let kind, let reason) = policy.decide(&e, result: .failure(outage), at: later) else {
            Issue.record("expected the dead letters")
            return
        }
        #expect(kind == .expired)
        #expect(reason.contains("MAX_QUEUE_LIFETIME") && reason.contains("Couldn't connect"))
    }

    @Test func emailFailuresSpendRetriesThenDeadLetter() {
        var e = email()
        let busy = DeliveryError(.transient, replyCode: 451, relaySaw: true, "451 busy")
        #expect(
            policy.decide(&e, result: .failure(busy), at: now)
                == .retry(notBefore: now.addingTimeInterval(10), counted: true)
        )
        #expect(
            policy.decide(&e, result: .failure(busy), at: now)
                == .retry(notBefore: now.addingTimeInterval(20), counted: true)
        )
        #expect(
            policy.decide(&e, result: .failure(busy), at: now)
                == .deadLetter(kind: .retriesExhausted, reason: "451 busy")
        )
        #expect(e.retryCount == 2 && e.attempts.count == 3)
    }

    @Test func aPermanentFailureAfterSomeReceivedItIsPartiallySent() {
        var e = email(cc: ["b@example.com"])
        _ = policy.decide(
            &e,
            result: .success([reply("u0@example.com", .accepted, 250), reply("b@example.com", .deferred, 451)]),
            at: now
        )
        let refused = DeliveryError(.permanent, replyCode: 554, relaySaw: true, "554 rejected")
        #expect(policy.decide(&e, result: .failure(refused), at: now) == .sent(partial: true))
        #expect(e.recipients?.map(\.state) == [.sent, .failed])
    }

    @Test func aPermanentFailureForEveryoneIsADeadLetter() {
        var e = email()
        let refused = DeliveryError(.permanent, replyCode: 550, relaySaw: true, "550 no")
        #expect(
            policy.decide(&e, result: .failure(refused), at: now) == .deadLetter(kind: .permanent, reason: "550 no")
        )
        #expect(e.recipients?.map(\.state) == [.failed])
    }

    @Test func attemptsAreCappedSoALongOutageCannotGrowTheFile() {
        var e = email()
        let outage = DeliveryError(.transient, scope: .sender, "down")
        for _ in 0..<(DeliveryAttempt.keptAttempts + 20) { _ = policy.decide(&e, result: .failure(outage), at: now) }
        #expect(e.attempts.count == DeliveryAttempt.keptAttempts)
    }

    @Test func theEnvelopeNamesEachMailboxOnceTellingLocalPartsApart() {
        var e = email(cc: ["B@example.com", "u0@EXAMPLE.com"])
        e.bcc = ["b@example.com", "c@example.com", "B@Example.COM"]
        // The domain is compared without case, the local part as is (RFC 5321 §2.4).
        #expect(e.envelopeRecipients == ["u0@example.com", "B@example.com", "b@example.com", "c@example.com"])
    }

    @Test func aRequeuedEmailsLifetimeCountsFromTheRequeue() {
        var e = email()
        e.createdAt = now.addingTimeInterval(-7200)
        #expect(policy.expired(e, at: now))
        e.requeuedAt = now.addingTimeInterval(-60)
        #expect(!policy.expired(e, at: now))
    }
}

/// The pool-wide pause: one probe at a time, doubling on failed probes and on failures right
/// after a probe, capped, on the monotonic clock.
@Suite struct DeliveryPauseTests {
    let outage = DeliveryError(.transient, scope: .sender, "421 too many connections")

    @Test func aFailurePausesEveryoneAndOneProbeAtATimeEndsIt() {
        let pause = DeliveryPause(maxDelay: 4)
        let start = ContinuousClock.now
        #expect(pause.admit(now: start) == .deliver)
        pause.senderFailed(outage, probe: false, now: start)
        #expect(pause.admit(now: start) == .wait(seconds: 1))
        // Failures of sends already in flight do not lengthen it.
        pause.senderFailed(outage, probe: false, now: start)
        #expect(pause.admit(now: start) == .wait(seconds: 1))
        let due = start + .seconds(1)
        #expect(pause.admit(now: due) == .probe)
        guard case .wait = pause.admit(now: due) else {
            Issue.record("a second worker must wait while one probes")
            return
        }
        #expect(pause.health.healthy == false && pause.health.lastError == outage.message)
        #expect(pause.relayAnswered(delivered: true))
        #expect(pause.admit(now: due) == .deliver)
        #expect(pause.health.healthy && pause.health.pausedUntil == nil && pause.health.lastSuccessAt != nil)
    }

    @Test func failedProbesDoubleThePauseUpToTheMaximum() {
        let pause = DeliveryPause(maxDelay: 4)
        var now = ContinuousClock.now
        pause.senderFailed(outage, probe: false, now: now)
        var delays: [Double] = []
        for _ in 0..<5 {
            now += .seconds(10)
            #expect(pause.admit(now: now) == .probe)
            pause.senderFailed(outage, probe: true, now: now)
            guard case .wait(let seconds) = pause.admit(now: now) else { return }
            delays.append(seconds)
        }
        #expect(delays == [2, 4, 4, 4, 4])
    }

    @Test func aProbeThatWorksKeepsTheBackoffUntilAnAttemptReachesTheRelay() {
        // A relay that authenticates (the probe works) but refuses every MAIL FROM with 530.
        let pause = DeliveryPause(maxDelay: 8)
        var now = ContinuousClock.now
        var delays: [Double] = []
        for _ in 0..<5 {
            pause.senderFailed(outage, probe: false, now: now)
            guard case .wait(let seconds) = pause.admit(now: now) else { return }
            delays.append(seconds)
            now += .seconds(seconds)
            #expect(pause.admit(now: now) == .probe)
            pause.relayAnswered(delivered: false, byProbe: true)
        }
        #expect(delays == [1, 2, 4, 8, 8])
        // An attempt the relay answers about the email resets it.
        pause.relayAnswered(delivered: false)
        pause.senderFailed(outage, probe: false, now: now)
        #expect(pause.admit(now: now) == .wait(seconds: 1))
    }

    @Test func aWallClockStepChangesNothing() {
        let pause = DeliveryPause(maxDelay: 300)
        let now = ContinuousClock.now
        // The wall clock an hour behind, as after an NTP step back at boot.
        pause.senderFailed(outage, probe: false, now: now, wallClock: Date().addingTimeInterval(-3600))
        #expect(pause.admit(now: now + .milliseconds(500)) == .wait(seconds: 0.5))
        #expect(pause.admit(now: now + .seconds(1)) == .probe)
    }
}
