import Foundation

@testable import MailModel

/// A valid queued email for tests: `u{n}@example.com`, subject `s{n}`, body `b{n}`, with a
/// request id (and so a file name) for `date`.
func queuedEmail(_ n: Int = 0, at date: Date = Date(), priority: Int = 2) -> QueuedEmail {
    let id = RequestID.make(at: date)
    return QueuedEmail(
        requestID: id,
        messageID: "<\(id)@example.org>",
        createdAt: date,
        toEmail: "u\(n)@example.com",
        subject: "s\(n)",
        body: "b\(n)",
        priority: priority
    )
}

extension TemporaryDirectory {
    /// Every entry of `sub`, directories and links included, sorted.
    func entries(_ sub: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/" + sub)) ?? []).sorted()
    }
}
