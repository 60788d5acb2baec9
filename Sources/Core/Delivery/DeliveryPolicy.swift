import Foundation
import MailModel

/// What happens to an email after an attempt: the retry and lifetime rules, kept outside the
/// queue store, which is handed the decision (`FailureDecision`) and the updated email.
///
/// - Failures on the sender's side (`DeliveryError.Scope.sender`) are recorded but cost the
///   email nothing: the pool pauses instead (`DeliveryPause`).
/// - Failures about the email (a 4xx or 5xx to its MAIL, RCPT or DATA) count against
///   `MAX_RETRIES`, with `RETRY_BASE_DELAY` x 2^n between attempts; a 5xx ends it at once.
/// - Each recipient is settled on its own: the accepted ones are not tried again, the refused
///   ones (5xx) are given up, the deferred ones (4xx) are retried.
/// - An email still undelivered `MAX_QUEUE_LIFETIME` after it was accepted goes to the dead
///   letters whatever the cause (postfix's `maximal_queue_lifetime`).
public struct DeliveryPolicy: Sendable, Equatable {
    public var retry: RetryPolicy
    /// `MAX_QUEUE_LIFETIME` seconds (default 5 days).
    public var maxQueueLifetime: TimeInterval

    public init(retry: RetryPolicy = RetryPolicy(), maxQueueLifetime: TimeInterval = 5 * 86_400) {
        self.retry = retry
        self.maxQueueLifetime = maxQueueLifetime
    }

    /// What to do with an email after an attempt.
    public enum Decision: Equatable, Sendable {
        /// Done: every recipient is settled and at least one received it; `partial`: some were
        /// refused. The email's `recipients` is nil when all accepted it at the first attempt
        /// (the queue file needs no rewrite); after any failed attempt it records them all.
        case sent(partial: Bool)
        /// Back to the queue (`FailureDecision.retry`).
        case retry(notBefore: Date?, counted: Bool)
        /// To the dead letters (`FailureDecision.deadLetter`).
        case deadLetter(kind: DeadLetterKind, reason: String)
    }

    /// Whether `email` has outlived `maxQueueLifetime` at `now`, counted from its acceptance
    /// or, when an operator requeued it from the dead letters, from then.
    public func expired(_ email: QueuedEmail, at now: Date) -> Bool {
        now.timeIntervalSince(email.lifetimeStart) >= maxQueueLifetime
    }

    /// The reason written to an expired email's dead letter.
    public func expiryReason(_ email: QueuedEmail) -> String {
        let days = maxQueueLifetime / 86_400
        let lifetime = days >= 1 && days == days.rounded() ? "\(Int(days)) days" : "\(Int(maxQueueLifetime)) s"
        return "undelivered after MAX_QUEUE_LIFETIME (\(lifetime))"
            + (email.lastError.map { "; last error: \($0)" } ?? "")
    }

    /// Records the attempt in `email` (its recipients, attempts, retry count, next attempt)
    /// and decides what happens next. `result`: the transport's replies, or its error.
    public func decide(
        _ email: inout QueuedEmail,
        result: Result<[RecipientReply], DeliveryError>,
        at now: Date
    ) -> Decision {
        switch result {
        case .success(let replies):
            let unsettled = replies.filter { $0.status != .accepted }
            if unsettled.isEmpty, email.recipients == nil, email.attempts.isEmpty { return .sent(partial: false) }
            settle(&email, replies, at: now)
            let summary =
                unsettled.isEmpty
                ? "delivered to the remaining recipients"
                : unsettled.map { "\($0.address): \($0.reply ?? "no answer")" }.joined(separator: "; ")
            // Those left are deferred only because the relay wants fewer messages a second:
            // no retry spent (the pool slows down, `SendRate`).
            let throttled =
                !unsettled.isEmpty
                && unsettled.allSatisfy {
                    $0.status == .deferred && DeliveryError.isRateLimit(code: $0.code, reply: $0.reply)
                }
            record(
                &email,
                DeliveryAttempt(
                    at: now,
                    error: summary,
                    scope: throttled ? .sender : .email,
                    relaySaw: true,
                    counted: throttled ? false : nil,
                    recipients: replies
                )
            )
            if throttled {
                email.lastError = summary
                if expired(email, at: now) { return .deadLetter(kind: .expired, reason: expiryReason(email)) }
                return .retry(notBefore: nil, counted: false)
            }
            return afterRecipients(&email, error: summary, at: now)
        case .failure(let error):
            let counted = error.scope == .email
            record(
                &email,
                DeliveryAttempt(
                    at: now,
                    error: error.message,
                    scope: error.scope,
                    code: error.replyCode,
                    relaySaw: error.relaySaw,
                    counted: counted,
                    recipients: error.recipients.isEmpty ? nil : error.recipients
                )
            )
            email.lastError = error.message
            guard counted else {
                if expired(email, at: now) { return .deadLetter(kind: .expired, reason: expiryReason(email)) }
                return .retry(notBefore: email.nextAttemptAt, counted: false)
            }
            settle(&email, error.recipients, at: now)
            if error.kind == .permanent {
                // Refused for everyone still pending, not only those the relay named.
                let named = Set(error.recipients.map { QueuedEmail.mailboxKey($0.address) })
                for address in email.pendingRecipients where !named.contains(QueuedEmail.mailboxKey(address)) {
                    setOutcome(
                        &email,
                        RecipientOutcome(
                            address: address,
                            state: .failed,
                            code: error.replyCode,
                            reply: error.message,
                            at: now
                        )
                    )
                }
            }
            return afterRecipients(&email, error: error.message, at: now)
        }
    }

    /// After the recipients were settled: sent when none is pending, else a counted retry,
    /// or the dead letters once the retries or the lifetime are spent.
    private func afterRecipients(_ email: inout QueuedEmail, error: String, at now: Date) -> Decision {
        let outcomes = email.recipients ?? []
        if email.pendingRecipients.isEmpty {
            if outcomes.contains(where: { $0.state == .sent }) {
                return .sent(partial: outcomes.contains { $0.state == .failed })
            }
            return .deadLetter(kind: .permanent, reason: error)
        }
        email.lastError = error
        if expired(email, at: now) { return .deadLetter(kind: .expired, reason: expiryReason(email)) }
        if email.retryCount >= retry.maxRetries { return .deadLetter(kind: .retriesExhausted, reason: error) }
        let due = now.addingTimeInterval(retry.delay(beforeRetry: email.retryCount))
        email.retryCount += 1
        email.nextAttemptAt = due
        return .retry(notBefore: due, counted: true)
    }

    /// Records each reply as its recipient's outcome.
    private func settle(_ email: inout QueuedEmail, _ replies: [RecipientReply], at now: Date) {
        for reply in replies {
            let state: RecipientOutcome.State =
                switch reply.status {
                case .accepted: .sent
                case .refused: .failed
                case .deferred: .deferred
                }
            setOutcome(
                &email,
                RecipientOutcome(address: reply.address, state: state, code: reply.code, reply: reply.reply, at: now)
            )
        }
    }

    private func setOutcome(_ email: inout QueuedEmail, _ outcome: RecipientOutcome) {
        var outcomes = email.recipients ?? []
        let key = QueuedEmail.mailboxKey(outcome.address)
        if let i = outcomes.firstIndex(where: { QueuedEmail.mailboxKey($0.address) == key }) {
            outcomes[i] = outcome
        } else {
            outcomes.append(outcome)
        }
        email.recipients = outcomes
    }

    private func record(_ email: inout QueuedEmail, _ attempt: DeliveryAttempt) {
        email.attemptTotal = max(email.attemptTotal ?? 0, email.attempts.count) + 1
        email.attempts.append(attempt)
        if email.attempts.count > DeliveryAttempt.keptAttempts {
            email.attempts.removeFirst(email.attempts.count - DeliveryAttempt.keptAttempts)
        }
    }
}

/// Retry policy: `MAX_RETRIES` attempts after the first, `RETRY_BASE_DELAY` x 2^n between them.
public struct RetryPolicy: Sendable, Equatable {
    public var maxRetries: Int
    /// Seconds before the first retry; doubles with each further one.
    public var baseDelay: TimeInterval

    public init(maxRetries: Int = 3, baseDelay: TimeInterval = 1) {
        self.maxRetries = maxRetries
        self.baseDelay = baseDelay
    }

    /// The delay before retry number `retry` (0-based): `baseDelay * 2^retry` seconds.
    public func delay(beforeRetry retry: Int) -> TimeInterval {
        baseDelay * pow(2, Double(retry))
    }
}
