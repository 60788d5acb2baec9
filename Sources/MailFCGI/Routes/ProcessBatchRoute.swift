import FastCGI
import Foundation
import Logging
import Platform
import Status

#if canImport(Glibc)
import Glibc
#endif

/// `POST /process-batch`: asks mailworkerd, over its control socket, to claim the next due
/// email and deliver it now, and answers with what happened (`ProcessBatchAnswer`). The
/// responder holds no relay settings, so it cannot send itself. Safe while mailworkerd's
/// workers run: a claim is exclusive.
struct ProcessBatchRoute: Sendable {
    /// `QueueLayout.controlSocket`.
    let socketPath: String

    /// How long to wait for mailworkerd's answer: under nginx's default
    /// `fastcgi_read_timeout` (60 s), so the client gets this route's 504, not nginx's.
    static let answerTimeout = 55.0

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        let fd: Int32
        do {
            fd = try UnixSocket.connect(socketPath)
        } catch {
            logger.warning("process-batch: mailworkerd does not answer", metadata: ["error": "\(error)"])
            throw HTTPError(
                503,
                "mailworkerd is not running (nothing answers on its control socket), so nothing was processed",
                headers: [("Retry-After", "5")]
            )
        }
        defer { close(fd) }
        UnixSocket.setTimeouts(fd, seconds: Self.answerTimeout)
        let reply: [UInt8]
        do {
            try UnixSocket.sendAll(fd, Array((ProcessBatchAnswer.request + "\n").utf8), path: socketPath)
            reply = try UnixSocket.receiveAll(fd, limit: 1 << 20, path: socketPath)
        } catch  where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            throw HTTPError(
                504,
                "mailworkerd did not answer within \(Int(Self.answerTimeout)) s; the attempt goes on there "
                    + "and its outcome is recorded in the queue"
            )
        } catch {
            logger.warning("process-batch: the control socket failed", metadata: ["error": "\(error)"])
            throw HTTPError(503, "mailworkerd closed the control connection without an answer")
        }
        // "<status>\n<JSON body>", from ControlServer.
        guard let newline = reply.firstIndex(of: UInt8(ascii: "\n")),
            let status = Int(String(decoding: reply[..<newline], as: UTF8.self)),
            (200...599).contains(status),
            (try? JSONSerialization.jsonObject(with: Data(reply[(newline + 1)...]))) is [String: Any]
        else {
            throw HTTPError(503, "mailworkerd closed the control connection without an answer")
        }
        return Response(
            status: status,
            headers: [("Content-Type", "application/json")],
            body: Array(reply[(newline + 1)...])
        )
    }
}
