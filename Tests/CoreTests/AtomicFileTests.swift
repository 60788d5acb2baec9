import Foundation
import Testing

@testable import Platform

@Suite struct AtomicFileTests {
    let dir = TemporaryDirectory()

    @Test func writesTheWholeContentAndLeavesNoTempFile() throws {
        let bytes = Array(repeating: UInt8(ascii: "x"), count: 100_000)
        try AtomicFile.write(bytes, to: "f.json", in: dir.path)
        #expect(try Syscall.readFile(dir.path + "/f.json") == bytes)
        #expect(dir.names("") == ["f.json"])
    }

    @Test func replacesAnExistingFile() throws {
        try AtomicFile.write(Array("old".utf8), to: "f", in: dir.path)
        try AtomicFile.write(Array("new".utf8), to: "f", in: dir.path)
        #expect(try Syscall.readFile(dir.path + "/f") == Array("new".utf8))
    }

    @Test func failureNamesTheCallAndPathAndLeavesNothing() {
        let missing = dir.path + "/no/such/dir"
        #expect {
            try AtomicFile.write(Array("x".utf8), to: "f", in: missing)
        } throws: { error in
            let system = error as? SystemError
            return system?.call == "open" && system?.errno == ENOENT && system!.description.contains(missing)
        }
    }
}
