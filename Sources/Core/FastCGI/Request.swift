import Foundation

/// One HTTP request as nginx passes it over FastCGI (CGI/1.1 meta-variables, RFC 3875 §4.1).
public struct Request: Sendable {
    /// `REQUEST_METHOD`, e.g. `POST`.
    public var method: String
    /// `DOCUMENT_URI`: the normalised path without the query string.
    public var path: String
    /// `QUERY_STRING`, undecoded.
    public var query: String
    /// `CONTENT_TYPE`, or nil.
    public var contentType: String?
    /// The request's `Content-Encoding` header (`HTTP_CONTENT_ENCODING`), or nil.
    public var contentEncoding: String? = nil
    /// `REMOTE_USER`: the user nginx authenticated, or nil.
    public var remoteUser: String?
    /// The request body; empty when there is none.
    public var body: [UInt8]
    /// The request's header fields as nginx passes them (`HTTP_*` meta-variables, RFC 3875
    /// §4.1.18), by the variable's name without `HTTP_`: `IDEMPOTENCY_KEY` for
    /// `Idempotency-Key`.
    public var headers: [String: String] = [:]

    public init(
        method: String,
        path: String,
        query: String,
        contentType: String?,
        contentEncoding: String? = nil,
        remoteUser: String?,
        body: [UInt8]
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.remoteUser = remoteUser
        self.body = body
    }

    /// The header field `name` (any case, `-` or `_`), or nil.
    public func header(_ name: String) -> String? {
        headers[name.uppercased().replacingOccurrences(of: "-", with: "_")]
    }

    /// Query parameters, percent-decoded (`+` as space, as HTML forms send it).
    public var queryItems: [String: String] {
        var items: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (s: Substring) in
                s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            items[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return items
    }
}
