import Composition
import DKIM
import Foundation
import Logging
import MailModel
import Queue

#if canImport(Glibc)
import Glibc
#endif

/// Delivers one queued email at a time: claim, compose, send, decide (`DeliveryPolicy`),
/// record the outcome. Used by each mailworkerd worker thread and for `POST /process-batch`.
///
/// Not thread-safe: each thread has its own agent (and so its own transport connection).
public final class DeliveryAgent {
    public let queue: any QueueStore
    public let composer: MessageComposer
    public let transport: any Transport
    public let policy: DeliveryPolicy
    /// Signs each message just before it is sent (`DKIM_*` settings); nil signs nothing.
    public let signer: DKIMSigner?
    /// `SUPPRESSION_TTL_DAYS` in seconds; nil: a bounce suppresses for ever.
    public let suppressionTTL: TimeInterval?
    /// Told when an event was recorded (wakes the webhook sender).
    private let eventRecorded: @Sendable () -> Void
    /// The event types recorded (`WEBHOOK_EVENTS`); empty without `WEBHOOK_URL`: recording
    /// costs a durable file per email, which nobody would read.
    private let recordedEvents: Set<DeliveryEvent.Kind>
    private let logger: Logger

    /// What happened to the email `processNext` claimed.
    public enum Outcome: Equatable, Sendable {
        /// The relay accepted it for every recipient still pending; `partial`: some were
        /// refused for good.
        case sent(partial: Bool)
        /// Back in the queue, due again at `until` (nil: at once). `counted`: the attempt
        /// spent one of its retries (false for a failure on the sender's side).
        case deferred(until: Date?, error: String, counted: Bool)
        case deadLettered(error: String)
    }

    /// One attempt: which email, what happened, the delivery error if any, and how long it
    /// took from claim to recorded outcome.
    public struct Attempt: Sendable {
        public let requestID: String
        public let file: String
        public let outcome: Outcome
        public let error: DeliveryError?
        public let seconds: TimeInterval
        /// Whether the transport was used (false for an email that expired unattempted).
        public let attempted: Bool
        /// Each recipient's outcome after the attempt: its reply in this attempt, or what an
        /// earlier attempt settled (empty for an expired email; all accepted when sent at once).
        public let recipients: [RecipientOutcome]

        /// Whether the relay asked for fewer messages a second (to the transaction, or to the
        /// recipients left deferred): the pool slows down.
        public var rateLimited: Bool {
            if let error { return error.rateLimited }
            // No failure, yet put back without spending a retry: the recipients left were throttled.
            guard case .deferred(_, _, counted: false) = outcome else { return false }
            return recipients.contains {
                $0.state == .deferred && DeliveryError.isRateLimit(code: $0.code, reply: $0.reply)
            }
        }
    }

    /// Told why an outcome cannot be recorded (the disk is full, say) while the agent keeps
    /// retrying, and nil once it could be; for `/health`.
    private let recordingTrouble: @Sendable (String?) -> Void
    /// How long the agent keeps retrying to record one outcome before it gives up and
    /// throws (the claim is then recovered: a sent email may be sent again).
    private let recordingPatience: TimeInterval
    /// Emails `expireDue` found old by their names but not expired, by queue file name, with
    /// when they will be.
    private var notExpiring: [String: Date] = [:]

    /// - Parameters:
    ///   - recordingPatience: seconds to keep retrying an outcome that cannot be recorded
    ///     (mailworkerd: for ever; a request handler: a few seconds).
    ///   - recordingTrouble: called with the reason while recording fails, nil when it works again.
    public init(
        queue: any QueueStore,
        composer: MessageComposer,
        transport: any Transport,
        policy: DeliveryPolicy = DeliveryPolicy(),
        signer: DKIMSigner? = nil,
        suppressionTTL: TimeInterval? = nil,
        eventRecorded: @escaping @Sendable () -> Void = {},
        recordedEvents: Set<DeliveryEvent.Kind> = [],
        logger: Logger,
        recordingPatience: TimeInterval = .infinity,
        recordingTrouble: @escaping @Sendable (String?) -> Void = { _ in }
    ) {
        self.queue = queue
        self.composer = composer
        self.transport = transport
        self.policy = policy
        self.signer = signer
        self.suppressionTTL = suppressionTTL
        self.eventRecorded = eventRecorded
        self.recordedEvents = recordedEvents
        self.logger = logger
        self.recordingPatience = recordingPatience
        self.recordingTrouble = recordingTrouble
    }

    /// Claims the next due email and attempts it. `onClaim` is told the queue file's name
    /// as soon as it is claimed (for the worker's `current_batch`).
    /// - Returns: nil when nothing is due.
    /// - Throws: `SystemError` when the queue cannot be read or the outcome cannot be
    ///   recorded; the email then stays claimed until its claim is recovered.
    public func processNext(now: Date = Date(), onClaim: (String) -> Void = { _ in }) throws -> Attempt? {
        guard let claim = try queue.claim(now: now) else { return nil }
        let started = Date()
        onClaim(claim.name)
        let (outcome, error, attempted, recipients) = try deliver(claim)
        return Attempt(
            requestID: claim.email.requestID,
            file: claim.name,
            outcome: outcome,
            error: error,
            seconds: Date().timeIntervalSince(started),
            attempted: attempted,
            recipients: recipients
        )
    }

    /// While delivery is paused, the emails that have outlived `MAX_QUEUE_LIFETIME` still go
    /// to the dead letters, the oldest first whatever their priority or due time, at most
    /// `limit` per call (the rest at the next).
    /// - Returns: how many were dead-lettered.
    /// - Throws: `SystemError` from the queue.
    @discardableResult
    public func expireDue(now: Date = Date(), limit: Int = 100) throws -> Int {
        var expired = 0
        notExpiring = notExpiring.filter { $0.value > now }
        let cutoff = now.addingTimeInterval(-policy.maxQueueLifetime)
        while expired < limit {
            let skipping = Set(notExpiring.keys)
            guard let claim = try queue.claimExpired(createdBefore: cutoff, now: now, skipping: skipping) else { break }
            guard policy.expired(claim.email, at: now) else {
                // Old by its name, not by its content (requeued, or a name that says no
                // time): remembered until it does expire, so it is not offered again.
                let lifetimeStart = claim.email.lifetimeStart
                notExpiring[claim.name] = lifetimeStart.addingTimeInterval(policy.maxQueueLifetime)
                try queue.release(claim)
                continue
            }
            _ = try deliver(claim)  // an expired email is dead-lettered before any send
            expired += 1
        }
        return expired
    }

    private func deliver(_ claim: QueueClaim) throws -> (Outcome, DeliveryError?, attempted: Bool, [RecipientOutcome]) {
        var log = logger
        log[metadataKey: "request_id"] = "\(claim.email.requestID)"
        var email = claim.email
        if policy.expired(email, at: Date()) {
            // Whatever the cause, an email this old is not attempted again.
            let reason = policy.expiryReason(email)
            let at = Date()
            recordEvent(
                .deadLetter(kind: .expired, reason: reason),
                email: email,
                recipients: email.pendingRecipients.map {
                    RecipientOutcome(address: $0, state: .failed, reply: reason, at: at)
                },
                failure: nil,
                at: at,
                afterAttempts: true,
                log
            )
            try record("the expiry", log) {
                try queue.markFailed(
                    claim,
                    updated: email,
                    decision: .deadLetter(reason: reason, kind: .expired, at: at)
                )
            }
            log.error("undelivered for MAX_QUEUE_LIFETIME; moved to dead letters", metadata: ["error": "\(reason)"])
            return (.deadLettered(error: reason), nil, false, [])
        }
        var message = composer.compose(email)
        let result: Result<[RecipientReply], DeliveryError>
        if message.recipients.isEmpty {
            // Every recipient settled by earlier attempts (a record put back by recovery):
            // nothing to send, only the outcome to file.
            result = .success([])
        } else {
            do {
                // Signed at each attempt: `t=` is the time it goes out.
                try signer?.sign(&message.data)
                result = .success(try transport.send(message))
            } catch let error as DKIMKey.Problem {
                // Our side (OpenSSL out of memory): the email's retries are not spent.
                result = .failure(DeliveryError(.transient, scope: .sender, "DKIM signing failed: \(error)"))
            } catch let error as DeliveryError {
                result = .failure(error)
            } catch {
                result = .failure(DeliveryError(.transient, scope: .sender, "\(error)"))
            }
        }
        let at = Date()
        suppressUnknownMailboxes(result, of: email, at: at, log)
        let decision = policy.decide(&email, result: result, at: at)
        let failure: DeliveryError? = if case .failure(let error) = result { error } else { nil }
        let recipients = Self.recipients(of: email, message: message, result: result, decision: decision, at: at)
        recordEvent(decision, email: email, recipients: recipients, failure: failure, at: at, log)
        switch decision {
        case .sent(let partial):
            let keep = email.recipients == nil ? nil : email
            try record("the delivery", log) { try queue.markSent(claim, record: keep, at: at) }
            var metadata: Logger.Metadata = [
                "message_id": "\(message.messageID)", "recipients": "\(message.recipients.count)",
            ]
            if partial { metadata["error"] = "\(email.lastError ?? "")" }
            log.info(partial ? "delivered to some recipients; refused for the others" : "delivered", metadata: metadata)
            return (.sent(partial: partial), failure, true, recipients)
        case .retry(let notBefore, let counted):
            try record("the failed attempt", log) {
                try queue.markFailed(claim, updated: email, decision: .retry(notBefore: notBefore))
            }
            let error = email.lastError ?? ""
            log.warning(
                counted ? "delivery deferred" : "relay unavailable; email put back without spending a retry",
                metadata: [
                    "error": "\(error)", "retry": "\(email.retryCount)",
                    "next_attempt_at": "\(notBefore.map(Timestamp.iso8601) ?? "when delivery resumes")",
                ]
            )
            return (.deferred(until: notBefore, error: error, counted: counted), failure, true, recipients)
        case .deadLetter(let kind, let reason):
            try record("the failed attempt", log) {
                try queue.markFailed(claim, updated: email, decision: .deadLetter(reason: reason, kind: kind, at: at))
            }
            log.error("delivery failed; moved to dead letters", metadata: ["error": "\(reason)", "kind": "\(kind)"])
            return (.deadLettered(error: reason), failure, true, recipients)
        }
    }

    /// Records the event the decision reports (`email.sent`, `email.partially_sent`,
    /// `email.deferred` for a counted retry, `email.dead_lettered`) before the state change is
    /// recorded, so a crash between the two loses no event: the attempt is redone and records
    /// the same event id again if it ends the same way. A failure to record is logged; it
    /// never holds up delivery. Sender-side put-backs report nothing (an outage would flood).
    private func recordEvent(
        _ decision: DeliveryPolicy.Decision,
        email: QueuedEmail,
        recipients: [RecipientOutcome],
        failure: DeliveryError?,
        at: Date,
        afterAttempts: Bool = false,
        _ log: Logger
    ) {
        let kind: DeliveryEvent.Kind
        switch decision {
        case .sent(let partial): kind = partial ? .partiallySent : .sent
        case .retry(_, let counted):
            guard counted else { return }
            kind = .deferred
        case .deadLetter: kind = .deadLettered
        }
        guard recordedEvents.contains(kind) else { return }
        let event = DeliveryEvent(
            type: kind,
            email: email,
            // An attempt's event follows the attempts before it (the email's acceptance, with an
            // email.suppressed, is 0); an expiry follows the last attempt's event.
            sequence: email.eventSequence + (afterAttempts ? 2 : 1),
            at: at,
            recipients: recipients.map {
                DeliveryEvent.Recipient(address: $0.address, state: $0.state.rawValue, code: $0.code, reply: $0.reply)
            },
            code: failure?.replyCode,
            reply: failure?.message
        )
        do {
            try queue.events.record(event)
            eventRecorded()
        } catch {
            log.error("cannot record the delivery event", metadata: ["event": "\(event.id)", "error": "\(error)"])
        }
    }

    /// Adds to the suppression list each recipient the relay refused for good because its
    /// mailbox does not exist or is disabled (`Suppression.meansNoMailbox`). Before the outcome
    /// is recorded, so a crash between the two suppresses too (adding again is harmless);
    /// a failure to add is logged, never holds up delivery.
    private func suppressUnknownMailboxes(
        _ result: Result<[RecipientReply], DeliveryError>,
        of email: QueuedEmail,
        at: Date,
        _ log: Logger
    ) {
        let replies: [RecipientReply]
        switch result {
        case .success(let all): replies = all
        case .failure(let error): replies = error.recipients
        }
        for reply in replies
        where reply.status == .refused && Suppression.meansNoMailbox(code: reply.code, reply: reply.reply) {
            let suppression = Suppression(
                address: reply.address,
                origin: .bounce,
                reason: reply.reply ?? "refused with \(reply.code ?? 0)",
                code: reply.code,
                createdAt: at,
                expiresAt: suppressionTTL.map { at.addingTimeInterval($0) },
                requestID: email.requestID
            )
            do {
                try queue.suppressions.add(suppression)
                log.notice(
                    "recipient suppressed",
                    metadata: ["address": "\(reply.address)", "reply": "\(reply.reply ?? "")"]
                )
            } catch {
                log.error(
                    "cannot add to the suppression list",
                    metadata: ["address": "\(reply.address)", "error": "\(error)"]
                )
            }
        }
    }

    /// Each recipient's outcome for the attempt's answer: what the email records, else (it
    /// records none when all shared one fate) the same for every envelope recipient.
    private static func recipients(
        of email: QueuedEmail,
        message: OutgoingMessage,
        result: Result<[RecipientReply], DeliveryError>,
        decision: DeliveryPolicy.Decision,
        at: Date
    ) -> [RecipientOutcome] {
        if let recorded = email.recipients { return recorded }
        switch result {
        case .success(let replies):
            return replies.map {
                RecipientOutcome(address: $0.address, state: .sent, code: $0.code, reply: $0.reply, at: at)
            }
        case .failure(let error):
            let state: RecipientOutcome.State = if case .deadLetter = decision { .failed } else { .deferred }
            return message.recipients.map {
                RecipientOutcome(address: $0, state: state, code: error.replyCode, reply: error.message, at: at)
            }
        }
    }

    /// Runs `body`, which records an outcome in the queue, until it succeeds: the claim stays
    /// locked meanwhile, so an email the relay accepted is not sent again and a deferral is
    /// not retried without its count because the disk was full for a while. Waits 0.25 s
    /// doubling to 5 s between tries, so recording resumes within seconds of space returning.
    /// - Throws: the last error once `recordingPatience` has passed.
    private func record<T>(_ what: String, _ log: Logger, _ body: () throws -> T) throws -> T {
        let started = Date()
        var delay = 0.25
        var failures = 0
        while true {
            do {
                let result = try body()
                if failures > 0 {
                    recordingTrouble(nil)
                    log.notice("recorded \(what) after \(failures) failed tries")
                }
                return result
            } catch QueueError.claimLost(let name) {
                // Taken over by a CLAIM_TIMEOUT sweep: nothing left to record here.
                if failures > 0 { recordingTrouble(nil) }
                throw QueueError.claimLost(name)
            } catch {
                failures += 1
                recordingTrouble("cannot record \(what): \(error)")
                if failures == 1 || failures % 60 == 0 {
                    log.error(
                        "cannot record \(what); the claim is kept and recording retried",
                        metadata: ["error": "\(error)", "tries": "\(failures)"]
                    )
                }
                if Date().timeIntervalSince(started) + delay > recordingPatience { throw error }
                usleep(UInt32(delay * 1_000_000))
                delay = min(5, delay * 2)
            }
        }
    }
}
