import FastCGI
import Foundation
import Logging
import MailModel
import Queue

/// `GET /suppressions` (paged), `POST /suppressions` (add by hand, with a reason) and
/// `DELETE /suppressions/{address}`: the list of addresses not sent to, kept by the store
/// (`SuppressionStore`). The list is the sender's, not one user's: a bounce for one
/// application's email protects the reputation every application shares.
struct SuppressionsRoute: Sendable {
    let queue: any QueueStore
    /// `SUPPRESSION_TTL_DAYS` in seconds; nil: for ever.
    let ttl: TimeInterval?

    struct Page: Encodable {
        let data: [Suppression]
        let has_more: Bool
        /// Pass as `after` for the next page; null on the last.
        let next_after: String?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(data, forKey: .data)
            try c.encode(has_more, forKey: .has_more)
            try c.encode(next_after, forKey: .next_after)
        }

        enum CodingKeys: String, CodingKey { case data, has_more, next_after }
    }

    /// `?limit=` (1 to 1000, default 100) and `?after=` (the `next_after` of the page before).
    func list(_ request: Request, _ logger: Logger) throws -> Response {
        let raw = request.queryItems["limit"]
        guard let limit = raw.map({ Int($0) }) ?? 100, (1...1000).contains(limit) else {
            throw HTTPError.validation([
                FieldError(
                    [.key("query"), .key("limit")],
                    "Input should be a whole number from 1 to 1000",
                    type: "int_parsing"
                )
            ])
        }
        let after = request.queryItems["after"]  // decoded once already, as every query item
        let found: [Suppression]
        do {
            found = try queue.suppressions.list(after: after, limit: limit + 1, now: Date())
        } catch {
            throw HTTPError.storage(error, logger: logger)
        }
        let page = Array(found.prefix(limit))
        let more = found.count > limit
        return Response.json(Page(data: page, has_more: more, next_after: more ? page.last?.key : nil))
    }

    /// `{address, reason}`: 201 with the suppression (200 when the address was on the list:
    /// its entry is replaced).
    func add(_ request: Request, _ logger: Logger) throws -> Response {
        try EmailRequest.requireJSON(request)
        let document = try JSONValue.parse(request.body)
        guard case .object(let object) = document else {
            throw HTTPError.validation([
                FieldError([.key("body")], "Input should be an object {address, reason}", type: "model_attributes_type")
            ])
        }
        var fields = FieldReader(object)
        let address = fields.address("address", required: true)
        let reason = fields.headerText("reason", required: true, maxLength: 1000)
        if let reason, reason.trimmingCharacters(in: .whitespaces).isEmpty {
            fields.errors.append(
                .body("reason", "Give a reason (it is kept with the address)", type: "string_too_short")
            )
        }
        guard fields.errors.isEmpty, let address, let reason else { throw HTTPError.validation(fields.errors) }
        let now = Date()
        let suppression = Suppression(
            address: address.address,
            origin: .manual,
            reason: reason,
            createdAt: now,
            expiresAt: ttl.map { now.addingTimeInterval($0) }
        )
        let existed: Bool
        do {
            existed = try queue.suppressions.suppression(of: address.address, now: now) != nil
            try queue.suppressions.add(suppression)
        } catch {
            throw HTTPError.storage(error, logger: logger)
        }
        logger.info(
            "suppressed by hand",
            metadata: ["address": "\(address.address)", "user": "\(request.remoteUser ?? "-")"]
        )
        return Response.json(suppression, status: existed ? 200 : 201)
    }

    /// 200 `{address, deleted: true}`; 404 when the address is not on the list.
    func remove(_ request: Request, _ parameters: [String: String], _ logger: Logger) throws -> Response {
        // nginx's DOCUMENT_URI is decoded already: decoding again would turn a literal %31 into 1.
        let address = parameters["address"] ?? ""
        guard Mailbox.problem(address) == nil else {
            throw HTTPError.validation([
                FieldError(
                    [.key("path"), .key("address")],
                    "Input should be an email address",
                    type: "value_error",
                    input: .string(address)
                )
            ])
        }
        let removed: Bool
        do {
            removed = try queue.suppressions.remove(address: address)
        } catch {
            throw HTTPError.storage(error, logger: logger)
        }
        guard removed else { throw HTTPError(404, "\(address) is not on the suppression list") }
        logger.info("suppression removed", metadata: ["address": "\(address)", "user": "\(request.remoteUser ?? "-")"])
        struct Removed: Encodable {
            let address: String
            let deleted: Bool
        }
        return Response.json(Removed(address: address, deleted: true))
    }
}
