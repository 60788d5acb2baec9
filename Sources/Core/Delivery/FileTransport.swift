import Composition
import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// The embedded default transport: writes each message as `{outbox}/{request id}.eml`,
/// atomically, for development and for running without an SMTP server.
public final class FileTransport: Transport {
    public let directory: String

    /// - Throws: `SystemError` if the directory cannot be created.
    public init(directory: String) throws {
        self.directory = directory
        try Syscall.makeDirectories(directory)
    }

    public func send(_ message: OutgoingMessage) throws(DeliveryError) -> [RecipientReply] {
        let name =
            message.messageID.trimmingPrefix("<").split(separator: "@").first.map(String.init)
            ?? "message"
        do {
            try AtomicFile.write(message.data, to: name + ".eml", in: directory)
        } catch {
            throw DeliveryError(.transient, scope: .sender, "cannot write \(directory)/\(name).eml: \(error)")
        }
        return message.recipients.map { RecipientReply(address: $0, status: .accepted, reply: "written to the outbox") }
    }

    /// The outbox can be written to.
    public func probe() throws(DeliveryError) {
        guard Syscall.canWriteDirectory(directory) else {
            throw DeliveryError(.transient, scope: .sender, "cannot write to \(directory)")
        }
    }

    public func close() {}
}
