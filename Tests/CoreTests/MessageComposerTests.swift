import Foundation
import Testing

@testable import Composition
@testable import MailModel

@Suite struct MessageComposerTests {
    let composer = MessageComposer(sender: Sender(address: "noreply@example.org", name: "Acme Café"))

    func email(format: EmailFormat = .plain, html: String? = nil, priority: Int = 2) -> QueuedEmail {
        let id = RequestID.make()
        return QueuedEmail(
            requestID: id,
            messageID: composer.makeMessageID(requestID: id),
            createdAt: Date(timeIntervalSince1970: 1_796_020_531),
            toEmail: "to@example.com",
            cc: ["cc@example.com"],
            bcc: ["bcc@example.com"],
            replyTo: "help@example.org",
            subject: "Hi",
            body: "Text",
            htmlBody: html,
            format: format,
            priority: priority
        )
    }

    func headers(_ data: [UInt8]) -> [String] {
        let text = String(decoding: data, as: UTF8.self)
        return text.components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n")
    }

    @Test func envelopeHasEveryRecipientAndHeadersHideBcc() {
        let message = composer.compose(email())
        #expect(message.envelopeFrom == "noreply@example.org")
        #expect(message.recipients == ["to@example.com", "cc@example.com", "bcc@example.com"])
        let lines = headers(message.data)
        #expect(lines.contains("Date: Mon, 30 Nov 2026 06:35:31 +0000"))
        #expect(lines.contains("To: to@example.com"))
        #expect(lines.contains("Cc: cc@example.com"))
        #expect(lines.contains("Reply-To: help@example.org"))
        #expect(lines.contains { $0.hasPrefix("From: =?UTF-8?B?") && $0.hasSuffix(" <noreply@example.org>") })
        #expect(lines.contains { $0.hasPrefix("Message-ID: <") && $0.hasSuffix("@example.org>") })
        #expect(!lines.contains { $0.lowercased().hasPrefix("bcc") })
        #expect(!String(decoding: message.data, as: UTF8.self).contains("bcc@example.com"))
    }

    @Test func everyLineEndsInCRLFAndFitsSMTPLimits() {
        let message = composer.compose(
            email(format: .multipart, html: "<p>" + String(repeating: "é", count: 2000) + "</p>")
        )
        let text = String(decoding: message.data, as: UTF8.self)
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(text.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 78 })
        #expect(message.data.allSatisfy { $0 < 0x80 })
    }

    @Test func multipartAlternativeHasTextThenHTML() {
        let text = String(
            decoding: composer.compose(email(format: .multipart, html: "<b>HTML</b>")).data,
            as: UTF8.self
        )
        #expect(text.contains("Content-Type: multipart/alternative;\r\n boundary="))
        let plain = text.range(of: "Content-Type: text/plain")!
        let html = text.range(of: "Content-Type: text/html")!
        #expect(plain.lowerBound < html.lowerBound)
        #expect(text.contains("<b>HTML</b>"))
    }

    @Test func priorityBecomesXPriorityAndImportance() {
        let high = headers(composer.compose(email(priority: 1)).data)
        #expect(high.contains("X-Priority: 1 (Highest)") && high.contains("Importance: high"))
        let normal = headers(composer.compose(email(priority: 2)).data)
        #expect(!normal.contains { $0.hasPrefix("X-Priority") })
    }
}
