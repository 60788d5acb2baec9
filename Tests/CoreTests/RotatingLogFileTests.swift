import Foundation
import Testing

@testable import LogFiles

@Suite struct RotatingLogFileTests {
    let dir = TemporaryDirectory()

    @Test func aFileDrivenPast5MBRotatesKeepingThreeBackups() throws {
        let file = try RotatingLogFile(path: dir.path + "/app.log", maxBytes: 5 << 20, backups: 3)
        let line = String(repeating: "x", count: 1023) + "\n"
        for n in 0..<(22 * 1024) { file.write(n == 0 ? "first\n" : line) }  // 22 MiB in all
        #expect(dir.names("") == ["app.log", "app.log.1", "app.log.2", "app.log.3"])
        for name in dir.names("") {
            let size = try FileManager.default.attributesOfItem(atPath: dir.path + "/" + name)[.size] as! Int
            #expect(size <= 5 << 20 && size > 0)
        }
        // The first line has been rotated out of the last backup and deleted.
        #expect(try !String(contentsOfFile: dir.path + "/app.log.3", encoding: .utf8).hasPrefix("first"))
    }

    @Test func reopeningAppendsToTheExistingFile() throws {
        try RotatingLogFile(path: dir.path + "/a.log", maxBytes: 100, backups: 1).write("one\n")
        try RotatingLogFile(path: dir.path + "/a.log", maxBytes: 100, backups: 1).write("two\n")
        #expect(try String(contentsOfFile: dir.path + "/a.log", encoding: .utf8) == "one\ntwo\n")
    }
}
