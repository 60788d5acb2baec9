import FastCGI
import Foundation
import Logging
import MailModel
import Platform
import Queue

/// An error a handler throws to answer with a status and a FastAPI-style body:
/// `{"detail": "text"}`, or `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}` for
/// validation errors (422). `Router` turns it into the response; handlers only throw.
struct HTTPError: Error {
    var status: Int
    var detail: Detail
    var headers: [(String, String)] = []

    enum Detail: Encodable {
        case message(String)
        case validation([FieldError])

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .message(let text): try container.encode(text)
            case .validation(let errors): try container.encode(errors)
            }
        }
    }

    init(_ status: Int, _ message: String, headers: [(String, String)] = []) {
        self.status = status
        self.detail = .message(message)
        self.headers = headers
    }

    /// 422 with one entry per invalid field.
    static func validation(_ errors: [FieldError]) -> HTTPError {
        var error = HTTPError(422, "")
        error.detail = .validation(errors)
        return error
    }

    /// The answer when the queue could not store an email: 507 Insufficient Storage (RFC
    /// 4918 §11.5) when the filesystem is full or below `MIN_FREE_BYTES`, 503 with
    /// `Retry-After` for any other storage failure. The detail says what happened without
    /// paths; the full error goes to the log. Nothing was accepted in either case.
    static func storage(_ error: any Error, logger: Logger) -> HTTPError {
        logger.error("cannot store an email", metadata: ["error": "\(error)"])
        switch error {
        case let error as SystemError where error.errno == ENOSPC || error.errno == EDQUOT:
            return HTTPError(
                507,
                "Insufficient storage: the queue's disk is full, so the email was not accepted; retry later",
                headers: [("Retry-After", "60")]
            )
        case QueueError.insufficientStorage:
            return HTTPError(
                507,
                "Insufficient storage: free space on the queue's disk is below the reserve "
                    + "(MIN_FREE_BYTES, MIN_FREE_INODES), so the email was not accepted; retry later",
                headers: [("Retry-After", "60")]
            )
        default: break
        }
        let cause =
            (error as? SystemError).map { String(cString: strerror($0.errno)) }
            ?? (error is any StoreUnavailableError ? "its database cannot be reached" : "an unexpected error")
        return HTTPError(
            503,
            "The queue cannot store emails right now (\(cause)), so the email was not accepted; retry later",
            headers: [("Retry-After", "10")]
        )
    }

    var response: Response {
        struct Body: Encodable { let detail: Detail }
        return Response.json(Body(detail: detail), status: status, headers: headers)
    }
}

/// One entry of a 422 `detail` list, in the shape FastAPI (pydantic v2) gives: `loc`, `msg`,
/// `type`, and, where pydantic gives them, `input` (the offending value) and `ctx` (the
/// constraint, e.g. `{"le": 3}`).
struct FieldError: Encodable, Equatable {
    /// Where: `["body", "to_email"]`, or `["body", "cc", 1]` for list items.
    var loc: [LocationPart]
    var msg: String
    /// pydantic's error type: `missing`, `string_type`, `value_error`, `json_invalid`, ...
    var type: String
    var input: JSONValue?
    var ctx: [String: JSONValue]?

    enum LocationPart: Encodable, Equatable {
        case key(String)
        case index(Int)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .key(let key): try container.encode(key)
            case .index(let index): try container.encode(index)
            }
        }
    }

    init(_ loc: [LocationPart], _ msg: String, type: String, input: JSONValue? = nil, ctx: [String: JSONValue]? = nil) {
        self.loc = loc
        self.msg = msg
        self.type = type
        self.input = input
        self.ctx = ctx
    }

    /// An error at `body.field` (or `body.field[index]`).
    static func body(
        _ field: String,
        index: Int? = nil,
        _ msg: String,
        type: String,
        input: JSONValue? = nil,
        ctx: [String: JSONValue]? = nil
    ) -> FieldError {
        FieldError(
            [.key("body"), .key(field)] + (index.map { [.index($0)] } ?? []),
            msg,
            type: type,
            input: input,
            ctx: ctx
        )
    }

    enum CodingKeys: String, CodingKey { case loc, msg, type, input, ctx }

    /// `input` and `ctx` only when known (pydantic leaves `ctx` out when there is none).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        try container.encode(loc, forKey: .loc)
        try container.encode(msg, forKey: .msg)
        try container.encodeIfPresent(input, forKey: .input)
        try container.encodeIfPresent(ctx, forKey: .ctx)
    }
}
