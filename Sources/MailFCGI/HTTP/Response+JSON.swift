import FastCGI
import Foundation
import MailModel

extension Response {
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
}
