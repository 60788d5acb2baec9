import Composition
import MailModel

/// Something that delivers composed messages: `SMTPTransport` (libcurl) or `FileTransport`.
///
/// One instance is used by one thread at a time (each worker thread owns its own), so an
/// implementation may keep a connection open between messages; after a failed send it must
/// not reuse that connection.
public protocol Transport: AnyObject {
    /// Delivers `message` to its envelope recipients.
    /// - Returns: the relay's answer for each envelope recipient, in envelope order: some may
    ///   be refused (`RecipientReply.status`), as long as at least one was accepted.
    /// - Throws: `DeliveryError` when the message went to nobody: the relay could not be used
    ///   (`scope == .sender`), or it refused the transaction or every recipient (`.email`).
    func send(_ message: OutgoingMessage) throws(DeliveryError) -> [RecipientReply]

    /// Checks that the relay can be used now, sending no email (SMTP: connect, TLS, EHLO,
    /// AUTH and `NOOP`), while delivery is paused after failures on the sender's side.
    /// - Throws: `DeliveryError` (scope `.sender`) when it cannot.
    func probe() throws(DeliveryError)

    /// Ends any open session cleanly (SMTP `QUIT`). Safe to call more than once.
    func close()
}
