import Digest
import Testing

@testable import DKIM

@Suite struct DKIMTests {
    func hash(_ text: String) -> [UInt8] { RelaxedCanonicalization.bodyHash(ArraySlice(text.utf8)) }

    @Test func relaxedBodyCollapsesWhiteSpaceAndDropsTrailingEmptyLines() {
        // RFC 6376 §3.4.4 and the example of §3.4.5.
        #expect(hash(" C \r\nD \t E\r\n\r\n\r\n") == SHA256.digest(Array(" C\r\nD E\r\n".utf8)))
        #expect(hash("a\r\n\r\n \t\r\nb\r\n") == SHA256.digest(Array("a\r\n\r\n\r\nb\r\n".utf8)))
        #expect(hash("a\r\n \t \r\n\r\n") == SHA256.digest(Array("a\r\n".utf8)))
    }

    @Test func relaxedBodyEndsInOneLineBreakAndAnEmptyBodyHashesAsNothing() {
        #expect(hash("last line") == SHA256.digest(Array("last line\r\n".utf8)))
        #expect(hash("") == SHA256.digest([UInt8]()))
        #expect(hash("\r\n\r\n") == SHA256.digest([UInt8]()))
    }

    @Test func relaxedHeaderLowercasesTheNameAndUnfoldsTheValue() {
        let field = ArraySlice("SUBJect \t:  Hello \r\n\t  world  \r\n".utf8)
        #expect(RelaxedCanonicalization.header(field) == Array("subject:Hello world\r\n".utf8))
        #expect(RelaxedCanonicalization.header(field, withLineEnd: false) == Array("subject:Hello world".utf8))
    }

    @Test func headerFieldsKeepTheirFoldedLinesAndFindTheBody() {
        let message = Array("From: a@x\r\nSubject: one\r\n two\r\nTo: b@y\r\n\r\nbody\r\n".utf8)
        let (fields, bodyStart) = DKIMSigner.headerFields(message)
        #expect(fields.map(\.name) == ["from", "subject", "to"])
        #expect(String(decoding: message[fields[1].range], as: UTF8.self) == "Subject: one\r\n two\r\n")
        #expect(String(decoding: message[bodyStart...], as: UTF8.self) == "body\r\n")
    }

    @Test func theSignedHeaderListIsFoldedAtColons() {
        let folded = DKIMSigner.foldedList(DKIMSigner.signedHeaders + ["from"])
        #expect(folded.replacingOccurrences(of: "\r\n ", with: "").split(separator: ":").count == 12)
        #expect(folded.components(separatedBy: "\r\n").allSatisfy { $0.count <= 75 })
    }
}
