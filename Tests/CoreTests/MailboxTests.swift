import Testing
@testable import Core

@Suite struct MailboxTests {
    @Test(arguments: ["a@example.com", "first.last+tag@sub.example.co.uk", "x_y-z@localhost", "o'neil@example.com"])
    func accepts(_ address: String) {
        #expect(Mailbox.problem(address) == nil)
    }

    @Test(arguments: [
        ("", "has no @"), ("plain", "has no @"), ("@example.com", "has an empty local part"),
        ("a@", "domain is not a valid host name"), ("a@-x.com", "domain is not a valid host name"),
        ("a..b@example.com", "local part is not a valid dot-atom"), ("a b@example.com", "local part is not a valid dot-atom"),
        ("a@example.com\r\nBcc: b@example.com", "contains a control character"),
        ("é@example.com", "contains non-ASCII characters"),
    ])
    func refuses(_ address: String, _ problem: String) {
        #expect(Mailbox.problem(address) == problem)
    }

    @Test func enforcesRFC5321Lengths() {
        #expect(Mailbox.problem(String(repeating: "a", count: 65) + "@example.com") == "local part is longer than 64 characters")
        let longDomain = (0..<5).map { _ in String(repeating: "d", count: 60) }.joined(separator: ".")
        #expect(Mailbox.problem("a@" + longDomain) == "domain is longer than 255 characters")
    }
}
