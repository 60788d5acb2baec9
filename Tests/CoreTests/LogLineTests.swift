import Foundation
import Logging
import Testing

@testable import LogFiles

@Suite struct LogLineTests {
    let time = Date(timeIntervalSince1970: 1_764_484_529.125)

    @Test func jsonLineIsOneObjectWithTheNamedFieldsAndTheRestUnderMetadata() throws {
        let line = LogLine(
            time: time,
            level: .warning,
            component: "mailfcgi",
            message: "queued \"a\"\nsecond line",
            metadata: ["request_id": "01abc", "user": "demo", "attempt": "2", "to": .array(["a@b.c", "d@e.f"])]
        ).json
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false)  // a newline in the message stays escaped
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2025-11-30T06:35:29.125Z")
        #expect(object["level"] as? String == "warning")
        #expect(object["component"] as? String == "mailfcgi")
        #expect(object["message"] as? String == "queued \"a\"\nsecond line")
        #expect(object["request_id"] as? String == "01abc")
        #expect(object["user"] as? String == "demo")
        let rest = try #require(object["metadata"] as? [String: Any])
        #expect(Set(rest.keys) == ["attempt", "to"])
        #expect(rest["to"] as? [String] == ["a@b.c", "d@e.f"])
    }

    @Test func jsonLineWithoutMetadataHasOnlyTheFourFields() throws {
        let line = LogLine(time: time, level: .info, component: "mailworkerd", message: "started", metadata: [:]).json
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["time", "level", "component", "message"])
    }

    @Test func textLineKeepsItsShape() {
        let line = LogLine(
            time: time,
            level: .info,
            component: "mailfcgi",
            message: "queued",
            metadata: ["user": "demo", "request_id": "01abc"]
        ).text
        #expect(line == "2025-11-30T06:35:29.125Z info mailfcgi: request_id=01abc user=demo queued\n")
    }
}
