import Foundation

/// An HTTP response to write back through FastCGI as CGI headers plus body (RFC 3875 §6).
public struct Response: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A plain-text answer: the default for requests the protocol layer refuses.
    @Sendable public static func plainText(status: Int, reason: String) -> Response {
        Response(
            status: status,
            headers: [("Content-Type", "text/plain; charset=utf-8")],
            body: Array((reason + "\n").utf8)
        )
    }

    /// The CGI response head: `Status:` line, headers, blank line.
    public var head: String {
        var text = "Status: \(status) \(Self.reason(status))\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(body.count)\r\n\r\n"
        return text
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 507: "Insufficient Storage"
        default: "Status \(status)"
        }
    }
}
