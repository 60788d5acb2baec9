import Foundation
import Testing

@testable import MailModel

@Suite struct HeaderTextTests {
    @Test func asciiSubjectIsKeptAndFoldedAtSpaces() {
        let subject = Array(repeating: "word", count: 40).joined(separator: " ")
        let folded = HeaderText.unstructured(subject, headerName: "Subject")
        let lines = folded.components(separatedBy: "\r\n")
        #expect(lines.count > 1)
        #expect(("Subject: " + lines[0]).count <= 78)
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" ") && $0.count <= 78 })
        #expect(folded.replacingOccurrences(of: "\r\n", with: "") == subject)
    }

    @Test func nonASCIIBecomesEncodedWordsOfAtMost75Characters() {
        let subject = String(repeating: "Grüße 東京 🎉 ", count: 10)
        let encoded = HeaderText.unstructured(subject, headerName: "Subject")
        let words = encoded.components(separatedBy: "\r\n ")
        #expect(words.count > 1)
        for word in words {
            #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            #expect(word.count <= 75)
        }
        let decoded = words.map { word -> String in
            let base64 = word.dropFirst(10).dropLast(2)
            // Each word decodes alone: no character is split between two words.
            return String(data: Data(base64Encoded: String(base64))!, encoding: .utf8)!
        }.joined()
        #expect(decoded == subject)
    }

    /// Decodes what `unstructured` wrote (unfold, then decode each encoded-word).
    func decode(_ header: String) -> String {
        let words = header.components(separatedBy: "\r\n ")
        guard words.allSatisfy({ $0.hasPrefix("=?UTF-8?B?") }) else {
            return header.replacingOccurrences(of: "\r\n", with: "")
        }
        return words.map { String(data: Data(base64Encoded: String($0.dropFirst(10).dropLast(2)))!, encoding: .utf8)! }
            .joined()
    }

    @Test(arguments: [
        String(repeating: "x", count: 998), String(repeating: " ", count: 300), "  two  spaces ",
        "e" + String(repeating: "\u{301}", count: 3000), String(repeating: "a", count: 78) + " b",
    ])
    func everyLineFitsAndTheTextComesBackExactly(_ subject: String) {
        let header = HeaderText.unstructured(subject, headerName: "Subject")
        let lines = ("Subject: " + header).components(separatedBy: "\r\n")
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" ") && $0.contains { $0 != " " } })
        #expect(decode(header) == subject)
    }

    @Test func textThatLooksLikeAnEncodedWordIsEncoded() {
        #expect(HeaderText.unstructured("=?UTF-8?B?x?=", headerName: "Subject").hasPrefix("=?UTF-8?B?"))
    }

    @Test func displayNameIsQuotedOrEncoded() {
        #expect(
            HeaderText.mailbox("a@example.com", displayName: "Acme \"Mail\"", headerName: "From")
                == #""Acme \"Mail\"" <a@example.com>"#
        )
        #expect(HeaderText.mailbox("a@example.com", displayName: "Café", headerName: "From").hasPrefix("=?UTF-8?B?"))
        #expect(HeaderText.mailbox("a@example.com", displayName: nil, headerName: "From") == "a@example.com")
    }

    @Test(arguments: [
        String(repeating: "Acme Mail ", count: 120) + "Team", String(repeating: "Café ünïcødé 😀 ", count: 80),
    ])
    func longDisplayNamesAreFoldedWithin78(_ name: String) {
        let header = "From: " + HeaderText.mailbox("noreply@example.com", displayName: name, headerName: "From")
        let lines = header.components(separatedBy: "\r\n")
        #expect(lines.count > 10)
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" ") })
        #expect(lines.last?.hasSuffix("<noreply@example.com>") == true)
    }
}
