import Core
import Foundation
import Logging

/// `POST /process-batch`: claims the next due email and delivers it here, in the
/// responder, then answers with what happened. Safe while mailworkerd runs: a claim is
/// exclusive. Each call opens its own SMTP connection and closes it (QUIT) afterwards.
struct ProcessBatchRoute: Sendable {
    let queue: FileQueue
    let composer: MessageComposer
    let smtp: SMTPSettings?
    let outbox: String

    struct Body: Encodable {
        let processed: Bool
        let message: String
        let request_id: String?
        let file: String?
        /// `sent`, `deferred` or `dead_letter`.
        let outcome: String?
        let error: String?
        let next_attempt_at: String?
        let timestamp: String
    }

    func handle(_ request: Request, _ logger: Logger) throws -> Response {
        let transport: any Transport = try smtp.map(SMTPTransport.init) ?? FileTransport(directory: outbox)
        defer { transport.close() }
        // A request cannot wait for the disk to come back: after a few seconds the claim is
        // given up (and recovered by mailworkerd; a delivered email may then be sent again).
        let agent = DeliveryAgent(
            queue: queue,
            composer: composer,
            transport: transport,
            logger: logger,
            recordingPatience: 5
        )
        let now = Timestamp.iso8601(Date())
        guard let attempt = try agent.processNext() else {
            return Response.json(
                Body(
                    processed: false,
                    message: "No email is due",
                    request_id: nil,
                    file: nil,
                    outcome: nil,
                    error: nil,
                    next_attempt_at: nil,
                    timestamp: now
                )
            )
        }
        let (outcome, message, error, next): (String, String, String?, String?) =
            switch attempt.outcome {
            case .sent: ("sent", "Email sent", nil, nil)
            case .deferred(let until, let error):
                ("deferred", "Delivery failed; will retry", error, Timestamp.iso8601(until))
            case .deadLettered(let error): ("dead_letter", "Delivery failed; moved to dead letters", error, nil)
            }
        return Response.json(
            Body(
                processed: true,
                message: message,
                request_id: attempt.requestID,
                file: attempt.file,
                outcome: outcome,
                error: error,
                next_attempt_at: next,
                timestamp: now
            )
        )
    }
}
