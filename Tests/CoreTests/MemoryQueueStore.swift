import Foundation
import Synchronization

@testable import MailModel
@testable import Queue

/// A second `QueueStore`, in memory, written only against the protocol: it proves the seam
/// (the delivery agent runs on it unchanged) and lets tests see every state change.
final class MemoryQueueStore: QueueStore {
    /// A claim's token: which claim of the email it is, so a stale one is refused.
    final class Lease: Sendable {
        let generation: Int
        init(generation: Int) { self.generation = generation }
    }

    struct Entry {
        var email: QueuedEmail
        var state: EmailState
        var claimedBy: Int?
        var finishedAt: Date?
        var deadLetter: (reason: String, kind: DeadLetterKind)?
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let generation = Atomic<Int>(0)

    var snapshot: [String: Entry] { entries.withLock { $0 } }

    func enqueue(_ email: QueuedEmail) throws {
        try enqueue(batch: [email])
    }

    func enqueue(batch emails: [QueuedEmail]) throws {
        entries.withLock { entries in
            for email in emails {
                let scheduled = email.sendAt != nil && (email.nextAttemptAt ?? .distantPast) > Date()
                entries[email.requestID] = Entry(email: email, state: scheduled ? .scheduled : .queued)
            }
        }
    }

    func lookup(requestID: String, now: Date) throws -> EmailRecord? {
        entries.withLock { entries in
            entries[requestID].map {
                EmailRecord(state: $0.state, email: $0.email, finishedAt: $0.finishedAt, deadLetter: $0.deadLetter)
            }
        }
    }

    func cancel(requestID: String, now: Date) throws -> CancelOutcome {
        entries.withLock { entries in
            guard var entry = entries[requestID] else { return .notFound }
            let record = EmailRecord(state: entry.state, email: entry.email)
            guard [.scheduled, .queued, .deferred].contains(entry.state) else { return .notCancelable(record) }
            entry.state = .canceled
            entry.finishedAt = now
            entries[requestID] = entry
            return .canceled(EmailRecord(state: .canceled, email: entry.email, finishedAt: now))
        }
    }

    func census(limit: Int, now: Date) throws -> QueueCensus.Report {
        var report = QueueCensus.Report()
        for entry in entries.withLock({ Array($0.values) }) {
            switch entry.state {
            case .queued: report.pending += 1
            case .scheduled, .deferred: report.deferred += 1
            case .sending: report.processing += 1
            case .deadLetter: report.deadLetter += 1
            case .sent, .partiallySent, .canceled: report.trash += 1
            case .held: report.held += 1
            }
        }
        return report
    }

    func healthProblems(reported: [String]) -> [String] { reported }

    // MARK: Suppressions

    /// The suppression list, in memory.
    final class Suppressions: SuppressionStore {
        private let entries = Mutex<[String: Suppression]>([:])

        func suppression(of address: String, now: Date) throws -> Suppression? {
            entries.withLock { $0[QueuedEmail.mailboxKey(address)] }.flatMap { $0.isActive(at: now) ? $0 : nil }
        }

        func add(_ suppression: Suppression) throws { entries.withLock { $0[suppression.key] = suppression } }

        func remove(address: String) throws -> Bool {
            entries.withLock { $0.removeValue(forKey: QueuedEmail.mailboxKey(address)) != nil }
        }

        func list(after: String?, limit: Int, now: Date) throws -> [Suppression] {
            entries.withLock { entries in
                Array(
                    entries.values.filter { $0.isActive(at: now) && (after == nil || $0.key > after!) }
                        .sorted { $0.key < $1.key }.prefix(limit)
                )
            }
        }

        func prune(now: Date) throws -> Int {
            entries.withLock { entries in
                let expired = entries.filter { !$0.value.isActive(at: now) }.map(\.key)
                for key in expired { entries[key] = nil }
                return expired.count
            }
        }
    }

    let suppressions: any SuppressionStore = Suppressions()

    /// Delivery events, in memory, in the order recorded.
    final class Events: EventStore {
        private let entries = Mutex<[(name: String, event: PendingEvent, failed: Bool)]>([])

        func record(_ event: DeliveryEvent) throws {
            entries.withLock { entries in
                entries.removeAll { $0.name == event.id }
                entries.append((event.id, PendingEvent(event: event), false))
            }
        }

        func pending() throws -> [(name: String, event: PendingEvent)] {
            entries.withLock { $0.filter { !$0.failed }.map { ($0.name, $0.event) } }
        }

        func delivered(_ name: String) throws { entries.withLock { $0.removeAll { $0.name == name } } }

        func retry(_ name: String, _ updated: PendingEvent, failed: Bool) throws {
            entries.withLock { entries in
                if let i = entries.firstIndex(where: { $0.name == name }) { entries[i] = (name, updated, failed) }
            }
        }

        func failed() throws -> [(name: String, event: PendingEvent)] {
            entries.withLock { $0.filter(\.failed).map { ($0.name, $0.event) } }
        }

        func backlog() throws -> (pending: Int, failed: Int) {
            entries.withLock { entries in (entries.filter { !$0.failed }.count, entries.filter(\.failed).count) }
        }

        func resend(_ names: [String]) throws -> Int {
            entries.withLock { entries in
                var count = 0
                for i in entries.indices where entries[i].failed && names.contains(entries[i].name) {
                    entries[i].failed = false
                    entries[i].event.attempts = 0
                    count += 1
                }
                return count
            }
        }
    }

    let events: any EventStore = Events()

    // MARK: Administration

    func list(states: Set<EmailState>?, now: Date) throws -> [EmailRecord] {
        let wanted = states ?? [.scheduled, .queued, .deferred, .sending, .held, .deadLetter]
        return entries.withLock { entries in
            entries.keys.sorted().compactMap { id in
                let entry = entries[id]!
                guard wanted.contains(entry.state) else { return nil }
                return EmailRecord(state: entry.state, email: entry.email, deadLetter: entry.deadLetter)
            }
        }
    }

    /// Moves one email from one of `allowed` states to what `change` makes of it.
    private func change(
        _ requestID: String,
        allowed: Set<EmailState>,
        _ change: (inout Entry) -> Void
    ) -> AdminOutcome {
        entries.withLock { entries in
            guard var entry = entries[requestID] else { return .notFound }
            let record = EmailRecord(state: entry.state, email: entry.email, deadLetter: entry.deadLetter)
            guard allowed.contains(entry.state) else { return .notInState(record) }
            change(&entry)
            entries[requestID] = entry
            return .done(EmailRecord(state: entry.state, email: entry.email))
        }
    }

    func hold(requestID: String, now: Date) throws -> AdminOutcome {
        change(requestID, allowed: [.scheduled, .queued, .deferred]) { $0.state = .held }
    }

    func releaseHeld(requestID: String, now: Date) throws -> AdminOutcome {
        change(requestID, allowed: [.held]) { $0.state = $0.email.retryCount > 0 ? .deferred : .queued }
    }

    func flush(requestID: String, now: Date) throws -> AdminOutcome {
        change(requestID, allowed: [.deferred]) { $0.email.nextAttemptAt = nil }
    }

    func requeue(requestID: String, now: Date) throws -> AdminOutcome {
        change(requestID, allowed: [.deadLetter]) {
            $0.state = .queued
            $0.deadLetter = nil
            $0.email.retryCount = 0
            $0.email.nextAttemptAt = nil
            $0.email.requeuedAt = now
        }
    }

    func interruptedRequeues() throws -> [String] { [] }  // each change here is one step

    func delete(requestID: String, now: Date) throws -> AdminOutcome {
        entries.withLock { entries in
            guard let entry = entries[requestID] else { return .notFound }
            let record = EmailRecord(state: entry.state, email: entry.email, deadLetter: entry.deadLetter)
            guard [.scheduled, .queued, .deferred, .held, .deadLetter].contains(entry.state) else {
                return .notInState(record)
            }
            entries[requestID] = nil
            return .done(record)
        }
    }

    private func isDue(_ entry: Entry, now: Date) -> Bool {
        [.queued, .deferred, .scheduled].contains(entry.state) && (entry.email.nextAttemptAt ?? .distantPast) <= now
    }

    func claim(now: Date) throws -> QueueClaim? {
        entries.withLock { entries in
            let due = entries.values.filter { isDue($0, now: now) }
                .min { ($0.email.priority, $0.email.createdAt) < ($1.email.priority, $1.email.createdAt) }
            guard let due else { return nil }
            return take(due.email.requestID, in: &entries)
        }
    }

    func claimExpired(createdBefore: Date, now: Date, skipping: Set<String>) throws -> QueueClaim? {
        entries.withLock { entries in
            let old = entries.values.filter {
                [.queued, .deferred, .scheduled].contains($0.state) && $0.email.createdAt < createdBefore
                    && !skipping.contains($0.email.requestID)
            }.min { $0.email.createdAt < $1.email.createdAt }
            guard let old else { return nil }
            return take(old.email.requestID, in: &entries)
        }
    }

    private func take(_ id: String, in entries: inout [String: Entry]) -> QueueClaim {
        let lease = generation.add(1, ordering: .relaxed).newValue
        entries[id]!.state = .sending
        entries[id]!.claimedBy = lease
        return QueueClaim(name: id, email: entries[id]!.email, token: Lease(generation: lease))
    }

    struct StaleClaim: Error {}

    /// Applies `change` to the claimed entry if `claim` still owns it.
    private func settle(_ claim: QueueClaim, _ change: (inout Entry) -> Void) throws {
        try entries.withLock { entries in
            guard let lease = claim.token as? Lease, entries[claim.name]?.claimedBy == lease.generation else {
                throw StaleClaim()
            }
            change(&entries[claim.name]!)
            entries[claim.name]!.claimedBy = nil
        }
    }

    func markSent(_ claim: QueueClaim, record: QueuedEmail?, at date: Date) throws {
        try settle(claim) { entry in
            if let record { entry.email = record }
            let refused = entry.email.recipients?.contains { $0.state == .failed } ?? false
            entry.state = refused ? .partiallySent : .sent
            entry.finishedAt = date
        }
    }

    func markFailed(_ claim: QueueClaim, updated: QueuedEmail, decision: FailureDecision) throws {
        try settle(claim) { entry in
            entry.email = updated
            switch decision {
            case .retry(let notBefore):
                entry.email.nextAttemptAt = notBefore
                entry.state = .deferred
            case .deadLetter(let reason, let kind, let at):
                entry.state = .deadLetter
                entry.deadLetter = (reason, kind)
                entry.finishedAt = at
            }
        }
    }

    func release(_ claim: QueueClaim) throws {
        try settle(claim) { entry in
            entry.state = entry.email.retryCount > 0 ? .deferred : .queued
        }
    }

    func abandonClaim(_ name: String) throws {
        entries.withLock { entries in
            guard entries[name]?.state == .sending else { return }
            entries[name]!.state = .queued
            entries[name]!.claimedBy = nil
        }
    }

    var nextDue: Date? {
        entries.withLock { entries in
            entries.values.filter { [.deferred, .scheduled].contains($0.state) }.compactMap(\.email.nextAttemptAt).min()
        }
    }

    var pendingCounts: (pending: Int, deferred: Int) {
        let report = (try? census(limit: 0, now: Date())) ?? QueueCensus.Report()
        return (report.pending + report.deferred, report.deferred)
    }

    final class NoWatch: ArrivalWatch {
        func start() {}
        func stop() async {}
    }

    func watchArrivals(_ arrived: @escaping @Sendable () -> Void) throws -> any ArrivalWatch { NoWatch() }

    func refresh() {}

    func recoverClaims(lockedOlderThan: TimeInterval?, now: Date) throws -> Int { 0 }

    func pruneFinished(olderThan age: TimeInterval, now: Date) throws -> Int {
        entries.withLock { entries in
            let old = entries.filter { _, entry in
                [.sent, .partiallySent, .canceled].contains(entry.state)
                    && (entry.finishedAt.map { now.timeIntervalSince($0) >= age } ?? false)
            }
            for id in old.keys { entries[id] = nil }
            return old.count
        }
    }

    var problems: [String] { [] }

    let idempotencyKeys: any IdempotencyStore = MemoryKeys()

    /// Keys in memory: enough for the protocol; the file store's are tested on their own.
    final class MemoryKeys: IdempotencyStore {
        let ttl: TimeInterval = 86_400
        private let records = Mutex<[String: (digest: String, ids: [String], answer: [UInt8]?, held: Bool)]>([:])

        final class Held: KeyReservation {
            let requestIDs: [String]
            let done: @Sendable ([UInt8]?) -> Void
            init(_ ids: [String], done: @escaping @Sendable ([UInt8]?) -> Void) {
                requestIDs = ids
                self.done = done
            }
            func finish(answer: [UInt8]) throws { done(answer) }
            func release() { done(nil) }
        }

        func begin(
            key: String,
            user: String?,
            requestDigest: String,
            count: Int,
            now: Date
        ) throws
            -> IdempotencyBegin
        {
            let name = (user ?? "") + "\u{0}" + key
            return records.withLock { records in
                if let record = records[name] {
                    if record.held { return .inProgress }
                    if record.digest != requestDigest { return .mismatch }
                    if let answer = record.answer { return .replay(answer) }
                }
                let ids = records[name]?.ids ?? (0..<count).map { _ in RequestID.make(at: now) }
                let resumed = records[name] != nil
                records[name] = (requestDigest, ids, nil, true)
                return .proceed(
                    Held(ids) { [self] answer in
                        self.records.withLock { records in
                            records[name]?.held = false
                            if let answer { records[name]?.answer = answer }
                        }
                    },
                    resumed: resumed
                )
            }
        }

        func prune(now: Date) throws -> Int { 0 }
    }
}
