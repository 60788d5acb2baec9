import Foundation
import Testing

@testable import Composition
@testable import MailModel

@Suite struct MIMETests {
    @Test func base64IsCheckedWithoutDecoding() {
        #expect(Base64Text.canonical("QUJD") == "QUJD")
        #expect(Base64Text.canonical("QUI=") == "QUI=")
        #expect(Base64Text.canonical("QQ==") == "QQ==")
        #expect(Base64Text.canonical("QU\r\nJD\n") == "QUJD")
        #expect(Base64Text.canonical("") == "")
        for bad in ["QUJ", "QUJD=", "Q=JD", "QR==", "QUJ=", "QU*D", "===="] {
            #expect(Base64Text.canonical(bad) == nil, "\(bad)")
        }
        #expect(Base64Text.decodedLength(ofCanonical: "QUJD") == 3)
        #expect(Base64Text.decodedLength(ofCanonical: "QUI=") == 2)
        #expect(Base64Text.decodedLength(ofCanonical: "QQ==") == 1)
    }

    @Test func mediaTypesAreCheckedOrGuessed() throws {
        #expect(try MediaType.checked("Image/PNG").get() == "image/png")
        #expect(try MediaType.checked("text/csv;charset=\"utf-8\"").get() == "text/csv; charset=\"utf-8\"")
        #expect(MediaType.checked("png").failureReason != nil)
        #expect(MediaType.checked("multipart/mixed").failureReason != nil)
        #expect(MediaType.checked("text/plain; a b=c").failureReason != nil)
        #expect(MediaType.guessed(forFilename: "A.PDF") == "application/pdf")
        #expect(MediaType.guessed(forFilename: ".bashrc") == "application/octet-stream")
        #expect(MediaType.guessed(forFilename: "noextension") == "application/octet-stream")
    }

    @Test func fileNamesUseRFC2231WhenTheyMustAndStayWithinTheLine() {
        #expect(ParameterText.parameter("filename", "a b.pdf") == "filename=\"a b.pdf\"")
        #expect(ParameterText.parameter("filename", "März.pdf") == "filename*=utf-8''M%C3%A4rz.pdf")
        let long = ParameterText.parameter("filename", String(repeating: "ä", count: 40) + ".txt")
        let sections = long.components(separatedBy: ";\r\n ")
        #expect(sections.count > 1 && sections[0].hasPrefix("filename*0*=utf-8''%C3%A4"))
        #expect(sections[1].hasPrefix("filename*1*=%C3%A4"))
        #expect(sections.allSatisfy { $0.count <= 76 })
        #expect(ParameterText.legacyName("März.pdf").hasPrefix("\"=?UTF-8?B?"))
    }

    @Test func customHeadersRefuseStructuralNamesAndCheckListUnsubscribe() {
        #expect(CustomHeader.nameProblem("X-Campaign") == nil)
        for name in ["From", "content-type", "Content-Anything", "DKIM-Signature", "bcc", "X Bad", "X:Bad", ""] {
            #expect(CustomHeader.nameProblem(name) != nil, "\(name)")
        }
        #expect(
            CustomHeader.valueProblem("<https://x.example/u>, <mailto:u@x.example>", name: "List-Unsubscribe") == nil
        )
        #expect(CustomHeader.valueProblem("<http://x.example/u>", name: "list-unsubscribe") != nil)
        #expect(CustomHeader.valueProblem("List-Unsubscribe=One-Click", name: "List-Unsubscribe-Post") == nil)
        #expect(CustomHeader.valueProblem("a\r\nBcc: x", name: "X-A") != nil)
        let postWithoutHTTPS = [
            CustomHeader(name: "List-Unsubscribe", value: "<mailto:u@x.example>"),
            CustomHeader(name: "List-Unsubscribe-Post", value: "List-Unsubscribe=One-Click"),
        ]
        #expect(CustomHeader.setProblem(postWithoutHTTPS) != nil)
    }

    @Test func theMeasuredSizeIsTheComposedSize() {
        let composer = MessageComposer(sender: Sender(address: "noreply@example.org", name: "Ünïcode Sender"))
        let id = RequestID.make()
        var email = QueuedEmail(
            requestID: id,
            messageID: composer.makeMessageID(requestID: id),
            createdAt: Date(),
            toEmail: "to@example.com",
            subject: "Größe",
            body: "<p>Hi <img src=\"cid:logo@x\"></p>",
            htmlBody: nil,
            format: .html
        )
        email.attachments = [
            Attachment(filename: "logo.png", contentType: "image/png", contentID: "logo@x", content: "QUJD"),
            Attachment(
                filename: String(repeating: "日本", count: 30) + ".xlsx",
                contentType: MediaType.guessed(forFilename: "a.xlsx"),
                content: Data(repeating: 7, count: 10_000).base64EncodedString()
            ),
        ]
        email.headers = [CustomHeader(name: "X-Note", value: "ünï")]
        let message = composer.compose(email)
        #expect(composer.composedSize(email) == message.data.count)
        let text = String(decoding: message.data, as: UTF8.self)
        #expect(text.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 78 })
        #expect(text.contains("Content-Type: multipart/mixed;"))
        #expect(text.contains("Content-Type: multipart/related;"))
    }
}
