import FastCGI
import Foundation
import Logging
import MailModel
import Platform
import Queue

/// `POST /emails/batch`: a JSON array of up to `MAX_BATCH` emails, each shaped as the body of
/// `POST /email`, stored with one directory sync for all (`FileQueue.enqueue(batch:)`).
///
/// Strict by default: when any item is invalid, 422 lists every error by index
/// (`loc: ["body", INDEX, FIELD]`) and nothing is stored. With `?validation=permissive`, the
/// valid items are stored and the answer gives, per index, its `request_id` or its errors.
/// `Idempotency-Key` works as on `POST /email`, for the batch as a whole.
struct BatchRoute: Sendable {
    let single: EmailRoute
    /// `MAX_BATCH`.
    let maxItems: Int

    /// One item's result in the answer.
    struct Item: Encodable {
        let index: Int
        let request_id: String?
        let status: String?
        let errors: [FieldError]?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encodeIfPresent(request_id, forKey: .request_id)
            try c.encodeIfPresent(status, forKey: .status)
            try c.encodeIfPresent(errors, forKey: .errors)
        }

        enum CodingKeys: String, CodingKey { case index, request_id, status, errors }
    }

    struct Answer: Encodable {
        /// Every item, in order: stored ones with `request_id` and `status`, refused ones
        /// (permissive mode only) with `errors`.
        let data: [Item]
        let stored: Int
        let refused: Int
    }

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        let now = Date()
        let permissive: Bool
        switch request.queryItems["validation"] ?? "strict" {
        case "strict": permissive = false
        case "permissive": permissive = true
        case let other:
            throw HTTPError.validation([
                FieldError(
                    [.key("query"), .key("validation")],
                    "Input should be 'strict' or 'permissive'",
                    type: "enum",
                    input: .string(other)
                )
            ])
        }
        try EmailRequest.requireJSON(request)
        let document = try JSONValue.parse(request.body)
        guard case .array(let items) = document else {
            throw HTTPError.validation([
                FieldError([.key("body")], "Input should be a valid list of emails", type: "list_type", input: document)
            ])
        }
        guard !items.isEmpty, items.count <= maxItems else {
            throw HTTPError.validation([
                FieldError(
                    [.key("body")],
                    items.isEmpty
                        ? "List should have at least 1 item"
                        : "List should have at most \(maxItems) items (MAX_BATCH), not \(items.count)",
                    type: items.isEmpty ? "too_short" : "too_long",
                    ctx: items.isEmpty ? ["min_length": .int(1)] : ["max_length": .int(maxItems)]
                )
            ])
        }
        var prepared: [(index: Int, fields: EmailRequest, content: EmailRoute.Content)] = []
        var refused: [Int: [FieldError]] = [:]
        for (index, item) in items.enumerated() {
            do {
                var fields = try EmailRequest.parse(document: item, now: now, limits: single.limits)
                let content = try EmailRoute.content(of: fields, templates: single.templates)
                fields.suppressed = try single.suppressedRecipients(fields, now: now, logger: logger)
                prepared.append((index, fields, content))
            } catch let error as HTTPError {
                refused[index] = Self.located(error, at: index)
            }
        }
        // A message over MAX_MESSAGE_BYTES refuses the whole batch (413), in either mode.
        for item in prepared {
            try single.checkSize(item.fields, item.content, now: now, item: item.index)
        }
        if !refused.isEmpty, !permissive || prepared.isEmpty {
            throw HTTPError.validation(refused.keys.sorted().flatMap { refused[$0]! })
        }

        let keyed = try IdempotentRequest.start(
            request,
            keys: single.queue.idempotencyKeys,
            // The mode is part of the request: the same items strict and permissive differ.
            kind: permissive ? "batch:permissive:" : "batch:strict:",
            count: items.count,
            now: now
        )
        switch keyed {
        case nil:
            // New ids when another email of the same millisecond has one of their file names.
            for _ in 1...3 {
                do {
                    let ids = RequestID.distinct(items.count, at: now)
                    return try store(prepared, refused, ids: ids, skipping: [], now: now, request, logger)
                } catch QueueError.nameTaken {
                    continue
                }
            }
            throw HTTPError(503, "Could not find free request ids; retry", headers: [("Retry-After", "1")])
        case .replay(let response):
            return response
        case .proceed(let reservation, let resumed):
            defer { reservation.release() }
            let ids = reservation.requestIDs
            guard ids.count == items.count else {
                throw HTTPError(500, "The idempotency record does not fit the batch")
            }
            // Items a crashed request stored already are not stored again.
            // A lookup that fails is not "not stored": storing again could make a second email.
            let stored: Set<String>
            do {
                stored = resumed ? Set(try ids.filter { try single.queue.lookup(requestID: $0) != nil }) : []
            } catch {
                throw HTTPError.storage(error, logger: logger)
            }
            let response: Response
            do {
                response = try store(prepared, refused, ids: ids, skipping: stored, now: now, request, logger)
            } catch QueueError.nameTaken {
                // Another email of the same millisecond has one of these ids' file names (odds 2^-32).
                throw HTTPError(503, "A request id reserved for this key is taken; use a new Idempotency-Key")
            }
            do { try reservation.finish(answer: response.body) } catch {
                logger.warning("idempotency answer not recorded", metadata: ["error": "\(error)"])
            }
            return resumed && !stored.isEmpty ? IdempotentRequest.replayed(response.body) : response
        }
    }

    /// Stores the prepared items under `ids` (by index), except those whose id is in
    /// `skipping` (stored before), and answers for every item.
    private func store(
        _ prepared: [(index: Int, fields: EmailRequest, content: EmailRoute.Content)],
        _ refused: [Int: [FieldError]],
        ids: [String],
        skipping: Set<String>,
        now: Date,
        _ request: Request,
        _ logger: Logger
    ) throws -> Response {
        let emails = prepared.map { item in
            single.makeEmail(item.fields, item.content, requestID: ids[item.index], now: now, user: request.remoteUser)
        }
        do {
            let started = Date()
            let storing = emails.filter { !skipping.contains($0.requestID) }
            try single.queue.enqueue(batch: storing)
            single.metrics.stored(storing.count, seconds: Date().timeIntervalSince(started))
            for email in storing where email.recipients?.contains(where: { $0.state == .suppressed }) == true {
                single.metrics.suppressed(email.recipients!.filter { $0.state == .suppressed }.count)
                single.recordSuppressed(email, logger)
            }
        } catch let error as SystemError {
            throw HTTPError.storage(error, logger: logger)
        } catch QueueError.nameTaken(let id) {
            throw QueueError.nameTaken(id)  // the caller takes new ids, or gives up
        } catch let error as QueueError {
            throw HTTPError.storage(error, logger: logger)
        }
        logger.info(
            "batch queued",
            metadata: [
                "user": "\(request.remoteUser ?? "-")", "emails": "\(emails.count)", "refused": "\(refused.count)",
            ]
        )
        var data = emails.enumerated().map { position, email in
            Item(
                index: prepared[position].index,
                request_id: email.requestID,
                status: email.sendAt == nil ? "queued" : "scheduled",
                errors: nil
            )
        }
        data += refused.map { Item(index: $0.key, request_id: nil, status: nil, errors: $0.value) }
        data.sort { $0.index < $1.index }
        return Response.json(Answer(data: data, stored: emails.count, refused: refused.count))
    }

    /// An item's errors with its index after `body` (`["body", 3, "to_email"]`); a template
    /// error (400 for one email) becomes an error at the item's `template_name`.
    static func located(_ error: HTTPError, at index: Int) -> [FieldError] {
        switch error.detail {
        case .validation(let errors):
            return errors.map { error in
                var moved = error
                if moved.loc.first == .key("body") {
                    moved.loc.insert(.index(index), at: 1)
                } else {
                    moved.loc = [.key("body"), .index(index)] + moved.loc
                }
                return moved
            }
        case .message(let text):
            let type = error.status == 400 ? "template_error" : "value_error"
            let field: [FieldError.LocationPart] = error.status == 400 ? [.key("template_name")] : []
            return [FieldError([.key("body"), .index(index)] + field, text, type: type)]
        }
    }
}
