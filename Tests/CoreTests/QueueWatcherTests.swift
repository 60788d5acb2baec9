import Foundation
import Synchronization
import Testing

@testable import Platform
@testable import Queue

@Suite struct QueueWatcherTests {
    let dir = TemporaryDirectory()

    @Test func reportsFilesRenamedIntoTheDirectory() async throws {
        let seen = Mutex<[String]>([])
        let watcher = try QueueWatcher(directory: dir.path) { changes, _ in
            seen.withLock { $0 += changes.filter { !$0.departed }.map(\.name) }
        }
        watcher.start()
        try AtomicFile.write(Array("{}".utf8), to: "batch_1_aaaaaaaa.json", in: dir.path)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !seen.withLock({ $0.contains("batch_1_aaaaaaaa.json") }) {
            try await Task.sleep(for: .milliseconds(5))
        }
        await watcher.stop()
        #expect(seen.withLock { $0.contains("batch_1_aaaaaaaa.json") })
    }

    @Test func parsesEventRecordsAndOverflow() {
        func record(mask: UInt32, name: String) -> [UInt8] {
            let padded = Array(name.utf8) + [UInt8](repeating: 0, count: 16 - name.utf8.count % 16)
            func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
            return le(1) + le(mask) + le(0) + le(UInt32(name.isEmpty ? 0 : padded.count)) + (name.isEmpty ? [] : padded)
        }
        var changes: [QueueWatcher.Change] = []
        let bytes =
            record(mask: UInt32(IN_MOVED_TO), name: "a.json") + record(mask: UInt32(IN_Q_OVERFLOW), name: "")
            + record(mask: UInt32(IN_MOVED_TO), name: "batch_2_bbbbbbbb.json")
            + record(mask: UInt32(IN_MOVED_FROM), name: "batch_2_bbbbbbbb.json")
        #expect(QueueWatcher.parse(bytes[...], into: &changes))
        #expect(
            changes == [
                .init(name: "a.json", departed: false), .init(name: "batch_2_bbbbbbbb.json", departed: false),
                .init(name: "batch_2_bbbbbbbb.json", departed: true),
            ]
        )
    }
}
