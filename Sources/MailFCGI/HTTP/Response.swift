import Foundation
import MailModel

/// An HTTP response to write back through FastCGI as CGI headers plus body (RFC 3875 §6).
struct Response: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response with `value` encoded as its body. If encoding fails (a value JSON
    /// cannot hold, such as a NaN), the answer is a 500 saying so, never `status` with a
    /// body that does not match it.
    static func json(_ value: some Encodable, status: Int = 200, headers: [(String, String)] = []) -> Response {
        let encoder = QueueCoding.encoder()  // ISO 8601 dates
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]  // stable for clients and logs
        guard let body = try? encoder.encode(value) else {
            return Response(
                status: 500,
                headers: [("Content-Type", "application/json")],
                body: Array(#"{"detail":"Internal server error: the answer could not be encoded"}"#.utf8)
            )
        }
        return Response(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(body))
    }

    /// The CGI response head: `Status:` line, headers, blank line.
    var head: String {
        var text = "Status: \(status) \(Self.reason(status))\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(body.count)\r\n\r\n"
        return text
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
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
