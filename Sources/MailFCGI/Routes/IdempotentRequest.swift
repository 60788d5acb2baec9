import Digest
import FastCGI
import Foundation
import MailModel
import Queue

/// A request's `Idempotency-Key`, checked and looked up, with the answers every keyed route
/// (`POST /email`, `POST /emails/batch`) gives for it.
enum IdempotentRequest {
    /// What to do with a keyed request.
    enum Start {
        /// Answered before: send this again.
        case replay(Response)
        /// Handle it under the reservation's request ids, then finish the reservation.
        case proceed(any KeyReservation, resumed: Bool)
    }

    /// The request's key taken from `keys`, or nil when the request has no key.
    /// - Parameters:
    ///   - kind: what the body is (`""` for one email, e.g. `"batch:strict:"`), so that the
    ///     same body sent to another route or mode is another request.
    ///   - count: request ids to reserve (one per email).
    /// - Throws: `HTTPError` 422 for a malformed key or one used for another body, 409 (with
    ///   `Retry-After: 1`) while the first request with it is handled.
    static func start(
        _ request: Request,
        keys: any IdempotencyStore,
        kind: String,
        count: Int,
        now: Date
    ) throws
        -> Start?
    {
        guard let key = request.header("Idempotency-Key") else { return nil }
        if let problem = IdempotencyKeys.problem(key) {
            throw keyError("Idempotency-Key \(problem)", type: "value_error", key: key)
        }
        let digest = SHA256.hex(Array(kind.utf8) + (try canonical(request.body)))
        switch try keys.begin(key: key, user: request.remoteUser, requestDigest: digest, count: count, now: now) {
        case .inProgress:
            throw HTTPError(
                409,
                "A request with this Idempotency-Key is being handled; retry when it has been answered",
                headers: [("Retry-After", "1")]
            )
        case .mismatch:
            throw keyError(
                "This Idempotency-Key was used for another request in the last \(Int(keys.ttl / 3600)) hours; "
                    + "use a new key for a new request",
                type: "idempotency_key_reused",
                key: key
            )
        case .replay(let answer):
            return .replay(replayed(answer))
        case .proceed(let reservation, let resumed):
            return .proceed(reservation, resumed: resumed)
        }
    }

    private static func keyError(_ message: String, type: String, key: String) -> HTTPError {
        HTTPError.validation([
            FieldError([.key("header"), .key("Idempotency-Key")], message, type: type, input: .string(key))
        ])
    }

    /// The first answer again, marked as such.
    static func replayed(_ answer: [UInt8]) -> Response {
        Response(
            status: 200,
            headers: [("Content-Type", "application/json"), ("Idempotent-Replayed", "true")],
            body: answer
        )
    }

    /// The body as canonical JSON (keys sorted, no spaces), so that two requests that differ
    /// only in spacing or key order are the same request.
    static func canonical(_ body: [UInt8]) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(try JSONValue.parse(body)))
    }
}
