import Foundation
import Testing

@testable import MailModel

@Suite struct RequestIDTests {
    @Test func isAUUIDv7CarryingItsMillisecondTimestamp() throws {
        let date = Date(timeIntervalSince1970: 1_796_020_531.014)
        let id = RequestID.make(at: date)
        let uuid = try #require(UUID(uuidString: id))
        #expect(uuid.uuidString.lowercased() == id)
        #expect(Array(id)[14] == "7")
        let base = try #require(RequestID.fileBaseName(for: id))
        #expect(base == "batch_1796020531014_\(id.suffix(8))")
    }

    @Test func idsAreUnique() {
        let ids = (0..<10_000).map { _ in RequestID.make() }
        #expect(Set(ids).count == ids.count)
    }

    @Test(arguments: [
        "", "not-a-uuid", "01a22b2a-6f46-41e2-8a0f-f71ad4a4016b", "../../etc/passwd-aaaa-bbbb-cccc-dddddddd",
    ])
    func refusesWhatIsNotAUUIDv7(_ id: String) {
        #expect(RequestID.fileBaseName(for: id) == nil)
    }
}
