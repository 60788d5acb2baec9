import Foundation
import Testing

@testable import Composition

@Suite struct QuotedPrintableTests {
    func encode(_ text: String) -> String {
        String(decoding: QuotedPrintable.encode(text), as: UTF8.self)
    }

    @Test func plainASCIIPassesThrough() {
        #expect(encode("Hello, world") == "Hello, world")
    }

    @Test func everyLineBreakBecomesCRLF() {
        #expect(encode("a\nb\r\nc\rd") == "a\r\nb\r\nc\r\nd")
    }

    @Test func equalsAndNonASCIIAreEscaped() {
        #expect(encode("a=b é") == "a=3Db =C3=A9")
    }

    @Test func trailingWhiteSpaceIsEscaped() {
        #expect(encode("a \nb\t") == "a=20\r\nb=09")
    }

    @Test func dotAndFromAtLineStartAreEscaped() {
        #expect(encode(".x\nFrom me\nok.F") == "=2Ex\r\n=46rom me\r\nok.F")
    }

    @Test func longLinesAreSoftBrokenWithin76Characters() {
        let text = String(repeating: "é", count: 3000) + String(repeating: "a", count: 5000)
        let encoded = encode(text)
        let lines = encoded.components(separatedBy: "\r\n")
        #expect(lines.count > 100)
        #expect(lines.allSatisfy { $0.utf8.count <= 76 })
        // Every line but the last ends in a soft break, and no escape is split across one.
        #expect(lines.dropLast().allSatisfy { $0.hasSuffix("=") })
        for (index, line) in lines.enumerated() {
            #expect(wholeEscapes(index == lines.count - 1 ? line[...] : line.dropLast()))
        }
        #expect(decode(encoded) == text)
    }

    @Test func roundTripsArbitraryText() {
        for text in ["", "x", "\n", "tab\tin", "東京 🎉\n.\nFrom ", String(repeating: "= ", count: 200)] {
            let normalized = text.replacingOccurrences(of: "\r\n", with: "\n")
            #expect(decode(encode(text)) == normalized, "\(text)")
        }
    }

    /// Whether every "=" in `line` starts a complete `=XX` escape.
    func wholeEscapes(_ line: Substring) -> Bool {
        let bytes = Array(line.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "=") {
                guard i + 2 < bytes.count,
                    Character(UnicodeScalar(bytes[i + 1])).isHexDigit,
                    Character(UnicodeScalar(bytes[i + 2])).isHexDigit
                else { return false }
                i += 3
            } else {
                i += 1
            }
        }
        return true
    }

    /// A minimal decoder for the round trip (RFC 2045 §6.7), independent of the encoder.
    func decode(_ encoded: String) -> String {
        var bytes: [UInt8] = []
        let input = Array(encoded.utf8)
        var i = 0
        while i < input.count {
            if input[i] == UInt8(ascii: "=") {
                if i + 2 < input.count, input[i + 1] == 0x0D, input[i + 2] == 0x0A {
                    i += 3
                    continue
                }
                bytes.append(UInt8(String(decoding: input[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)!)
                i += 3
            } else if input[i] == 0x0D, i + 1 < input.count, input[i + 1] == 0x0A {
                bytes.append(0x0A)
                i += 2
            } else {
                bytes.append(input[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Every kind of piece at every column around the limit, with and without a final line
    /// break and a second line, as the last line or not, with and without a final soft break.
    @Test(arguments: ["=", " ", "\t", "é", "€", "😀", ".", "F", "a", "=é"])
    func everyLineIsAtMost76AroundTheLimit(_ piece: String) {
        for column in 0...80 {
            for tail in ["", "\n", "\nnext line", "z", " \n"] {
                for softBreakAtEnd in [false, true] {
                    let text = String(repeating: "a", count: column) + piece + tail
                    let encoded = QuotedPrintable.encode(text, softBreakAtEnd: softBreakAtEnd)
                    let lines = String(decoding: encoded, as: UTF8.self).components(separatedBy: "\r\n")
                    let context = "\(piece.debugDescription) at \(column), tail \(tail.debugDescription)"
                    #expect(lines.allSatisfy { $0.utf8.count <= 76 }, "\(context)")
                    #expect(!lines.contains { $0.hasPrefix(".") || $0.hasPrefix("F") }, "\(context)")
                    #expect(!lines.contains { $0.hasSuffix(" ") || $0.hasSuffix("\t") }, "\(context)")
                    #expect(decode(String(decoding: encoded, as: UTF8.self)) == text, "\(context)")
                    if softBreakAtEnd { #expect(encoded.suffix(2) == [0x0D, 0x0A], "\(context)") }
                }
            }
        }
    }

    @Test func aCharacterIsNeverSplitAcrossASoftBreak() {
        for column in 60...80 {
            let encoded = String(
                decoding: QuotedPrintable.encode(String(repeating: "a", count: column) + "€€€€"),
                as: UTF8.self
            )
            for line in encoded.components(separatedBy: "=\r\n") {
                #expect(line.components(separatedBy: "=E2").count == line.components(separatedBy: "=AC").count)
            }
        }
    }
}
