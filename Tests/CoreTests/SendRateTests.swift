import Testing

@testable import Delivery

@Suite struct SendRateTests {
    @Test func aLimitAdmitsOneSecondsBurstThenPacesAtTheRate() {
        let rate = SendRate(perSecond: 10)
        let start = ContinuousClock.now
        // The bucket starts with one token and fills to 10 a second, at most 10.
        #expect(rate.admit(now: start) == nil)
        let wait = rate.admit(now: start)
        #expect(wait != nil && abs(wait! - 0.1) < 0.001)
        let later = start + .seconds(2)
        let admitted = (0..<20).filter { _ in rate.admit(now: later) == nil }.count
        #expect(admitted == 10)
    }

    @Test func noLimitAdmitsEverythingUntilARelayThrottles() {
        let rate = SendRate(perSecond: 0)
        let start = ContinuousClock.now
        for i in 0..<50 { #expect(rate.admit(now: start + .milliseconds(i * 100)) == nil) }  // 10 a second
        rate.slowDown(now: start + .seconds(5))
        let current = rate.current
        #expect(current.throttled && current.perSecond != nil)
        #expect(abs(current.perSecond! - 5) < 0.5)  // half of the 10 a second observed
    }

    @Test func theObservedRateCountsOnlyTheLastFiveSeconds() {
        let rate = SendRate(perSecond: 0)
        let start = ContinuousClock.now
        for _ in 0..<1_000 { _ = rate.admit(now: start) }  // a burst long before the throttle
        for i in 0..<20 { _ = rate.admit(now: start + .seconds(8) + .milliseconds(i * 100)) }  // 10 a second
        rate.slowDown(now: start + .seconds(10))
        // 20 admissions in the 5 s before: 4 a second, halved to 2; the burst is forgotten.
        #expect(rate.current.perSecond == 2)
    }

    @Test func aThrottleHalvesOnceASecondAndRecoversSlowlyToTheLimit() {
        let rate = SendRate(perSecond: 40)
        let start = ContinuousClock.now
        #expect(rate.slowDown(now: start))
        #expect(!rate.slowDown(now: start + .milliseconds(500)))  // the same burst of refusals: once
        #expect(rate.current.perSecond == 20)
        #expect(rate.slowDown(now: start + .seconds(2)))
        #expect(rate.current.perSecond == 10)
        // No recovery within 10 s of the last throttle, then a quarter more every 5 s.
        _ = rate.admit(now: start + .seconds(11))
        #expect(rate.current.perSecond == 10)
        _ = rate.admit(now: start + .seconds(13))
        #expect(rate.current.perSecond == 12.5)
        var now = start + .seconds(13)
        for _ in 0..<10 {
            now = now + .seconds(5)
            _ = rate.admit(now: now)
        }
        #expect(rate.current.perSecond == 40 && !rate.current.throttled)
    }
}
