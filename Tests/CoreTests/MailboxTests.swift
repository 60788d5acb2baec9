import Testing

@testable import MailModel

@Suite struct MailboxTests {
    @Test(arguments: [
        "a@example.com", "first.last+tag@sub.example.co.uk", "x_y-z@localhost", "o'neil@example.com", "A@EXAMPLE.COM",
    ])
    func accepts(_ address: String) {
        #expect(Mailbox.problem(address) == nil)
    }

    @Test(arguments: [
        ("", "there is no @"), ("plain", "there is no @"), ("@example.com", "the part before the @ is empty"),
        ("a@", "the domain is not a valid host name"), ("a@-x.com", "the domain is not a valid host name"),
        ("a@b", "the domain has no dot"), ("a@example..com", "the domain is not a valid host name"),
        ("a..b@example.com", "the part before the @ has a character or dot that is not allowed"),
        ("a b@example.com", "the part before the @ has a character or dot that is not allowed"),
        ("a@example.com\r\nBcc: b@example.com", "it contains a control character"),
        ("é@example.com", "it contains non-ASCII characters"),
    ])
    func refuses(_ address: String, _ problem: String) {
        #expect(Mailbox.problem(address) == problem)
    }

    @Test func enforcesRFC5321Lengths() {
        #expect(
            Mailbox.problem(String(repeating: "a", count: 65) + "@example.com")
                == "the part before the @ is longer than 64 characters"
        )
        let longDomain = (0..<5).map { _ in String(repeating: "d", count: 60) }.joined(separator: ".")
        #expect(Mailbox.problem("a@" + longDomain) == "the domain is longer than 255 characters")
    }
}
