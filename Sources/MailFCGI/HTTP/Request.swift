import Foundation

/// One HTTP request as nginx passes it over FastCGI (CGI/1.1 meta-variables, RFC 3875 §4.1).
struct Request: Sendable {
    /// `REQUEST_METHOD`, e.g. `POST`.
    var method: String
    /// `DOCUMENT_URI`: the normalised path without the query string.
    var path: String
    /// `QUERY_STRING`, undecoded.
    var query: String
    /// `CONTENT_TYPE`, or nil.
    var contentType: String?
    /// The request's `Content-Encoding` header (`HTTP_CONTENT_ENCODING`), or nil.
    var contentEncoding: String? = nil
    /// `REMOTE_USER`: the user nginx authenticated, or nil.
    var remoteUser: String?
    /// The request body; empty when there is none.
    var body: [UInt8]

    /// Query parameters, percent-decoded (`+` as space, as HTML forms send it).
    var queryItems: [String: String] {
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
