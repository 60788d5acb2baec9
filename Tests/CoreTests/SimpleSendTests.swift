import Foundation
import Testing

@testable import SMTP
@testable import Settings

@Suite struct SimpleSendTests {
    let dir = TemporaryDirectory()

    var settings: MailSettings {
        get throws {
            try MailSettings(EnvironmentReader(variables: ["DATA_DIR": dir.path, "SENDER_EMAIL": "me@example.org"]))
        }
    }

    @Test func sendsOneMessageAndSaysSo() throws {
        let outcome = SimpleSend.send(
            subject: "Test",
            body: "<p>Hello</p>",
            to: "user@example.com",
            format: .multipart,
            settings: try settings
        )
        #expect(outcome.sent)
        let files = dir.names("outbox")
        #expect(files.count == 1)
        let text = try String(contentsOfFile: dir.path + "/outbox/" + files[0], encoding: .utf8)
        #expect(text.contains("Message-ID: \(outcome.messageID)"))
        #expect(text.contains("multipart/alternative") && text.contains("<p>Hello</p>"))
    }

    @Test func badInputIsRefusedAndNothingIsSent() throws {
        let outcome = SimpleSend.send(
            subject: "a\r\nBcc: x@y.z",
            body: "b",
            to: "user@example.com",
            settings: try settings
        )
        #expect(outcome.error?.kind == .permanent)
        #expect(
            SimpleSend.send(subject: "s", body: "b", to: "nobody", settings: try settings).error?.kind == .permanent
        )
        #expect(dir.names("outbox").isEmpty)
    }
}
