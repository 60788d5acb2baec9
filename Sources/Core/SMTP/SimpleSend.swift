import Composition
import Delivery
import Foundation
import MailModel
import Settings

/// The seed's one-call helper for scripts: sends one message now, without the queue, over
/// the transport `settings` name (SMTP, or the file transport into `DATA_DIR/outbox/`), and
/// says what happened. Nothing retries it: use the API for mail that must not be lost.
public enum SimpleSend {
    /// The result of `send`.
    public struct Outcome: Sendable {
        /// The message's `Message-ID`.
        public let messageID: String
        /// Nil when the message was accepted by the server (or written to the outbox).
        public let error: DeliveryError?
        public var sent: Bool { error == nil }
    }

    /// Sends `body` to `recipient`. `format`: `.plain`, `.html` (the body is HTML), or
    /// `.multipart` (the body is HTML; a text part is derived from it).
    /// Bad input (an invalid recipient, a subject with a line break) is a permanent
    /// `DeliveryError`, nothing is sent.
    public static func send(
        subject: String,
        body: String,
        to recipient: String,
        format: EmailFormat = .plain,
        settings: MailSettings
    ) -> Outcome {
        let id = RequestID.make()
        let composer = MessageComposer(sender: settings.sender)
        let messageID = composer.makeMessageID(requestID: id)
        if let problem = Mailbox.problem(recipient) {
            return Outcome(messageID: messageID, error: DeliveryError(.permanent, "invalid recipient: \(problem)"))
        }
        if subject.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return Outcome(
                messageID: messageID,
                error: DeliveryError(.permanent, "the subject contains a control character")
            )
        }
        let (text, html) = format == .multipart ? (HTMLText.plainText(body), body) : (body, nil as String?)
        let email = QueuedEmail(
            requestID: id,
            messageID: messageID,
            createdAt: Date(),
            toEmail: recipient,
            subject: subject,
            body: text,
            htmlBody: html,
            format: format
        )
        do {
            let transport: any Transport =
                try settings.smtp.map(SMTPTransport.init)
                ?? FileTransport(directory: settings.layout.outbox)
            defer { transport.close() }
            _ = try transport.send(composer.compose(email))
            return Outcome(messageID: messageID, error: nil)
        } catch let error as DeliveryError {
            return Outcome(messageID: messageID, error: error)
        } catch {
            return Outcome(messageID: messageID, error: DeliveryError(.transient, "\(error)"))
        }
    }
}
