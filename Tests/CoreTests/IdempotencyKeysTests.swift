import Foundation
import Testing

@testable import Digest
@testable import Platform
@testable import Queue

/// The key records in process: reservation, answer, replay, mismatch, torn lines, expiry, pruning.
@Suite struct IdempotencyKeysTests {
    let dir = TemporaryDirectory()

    func keys(ttl: TimeInterval = 3600) throws -> IdempotencyKeys {
        try IdempotencyKeys(directory: dir.path + "/idempotency", ttl: ttl)
    }

    func record(user: String = "u", key: String) -> String {
        dir.path + "/idempotency/" + SHA256.hex(Array(user.utf8) + [0] + Array(key.utf8)) + ".json"
    }

    @Test func sha256MatchesTheStandardsVector() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func aKeyIsReservedAnsweredThenReplayed() throws {
        let store = try keys()
        guard case .proceed(let reservation, let resumed) = try store.begin(key: "k", user: "u", requestDigest: "d1")
        else {
            Issue.record(Comment(rawValue: "not proceeding"))
            return
        }
        #expect(!resumed)
        // Held: a second request with the key waits.
        guard case .inProgress = try store.begin(key: "k", user: "u", requestDigest: "d1") else {
            Issue.record(Comment(rawValue: "not in progress"))
            return
        }
        try reservation.finish(answer: Array(#"{"request_id":"x"}"#.utf8))
        guard case .replay(let answer) = try store.begin(key: "k", user: "u", requestDigest: "d1") else {
            Issue.record(Comment(rawValue: "not replayed"))
            return
        }
        #expect(answer == Array(#"{"request_id":"x"}"#.utf8))
        guard case .mismatch = try store.begin(key: "k", user: "u", requestDigest: "d2") else {
            Issue.record(Comment(rawValue: "another body was not refused"))
            return
        }
        // Another user's key of the same text is another key.
        guard case .proceed(_, false) = try store.begin(key: "k", user: "v", requestDigest: "d2") else {
            Issue.record(Comment(rawValue: "keys are not per user"))
            return
        }
    }

    @Test func aReservationWithoutAnAnswerIsResumedUnderTheSameID() throws {
        let store = try keys()
        guard case .proceed(let first, _) = try store.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record(Comment(rawValue: "not proceeding"))
            return
        }
        let id = first.requestID
        first.release()  // as a crash before the answer
        guard case .proceed(let again, let resumed) = try store.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record(Comment(rawValue: "not resumed"))
            return
        }
        #expect(resumed && again.requestID == id)
    }

    @Test func aTornAnswerReadsAsNoAnswerAndATornReservationAsNone() throws {
        let store = try keys()
        guard case .proceed(let first, _) = try store.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record(Comment(rawValue: "not proceeding"))
            return
        }
        let id = first.requestID
        first.release()
        let path = record(key: "k")
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"request_id":"tor"#.utf8))  // the answer, cut by a crash
        try handle.close()
        guard case .proceed(let resumed, true) = try store.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record(Comment(rawValue: "a torn answer was replayed"))
            return
        }
        #expect(resumed.requestID == id)
        try resumed.finish(answer: Array("{}".utf8))
        guard case .replay(let answer) = try store.begin(key: "k", user: "u", requestDigest: "d") else {
            Issue.record(Comment(rawValue: "not replayed"))
            return
        }
        #expect(answer == Array("{}".utf8))

        try Data(#"{"request_id":"01"#.utf8).write(to: URL(fileURLWithPath: record(key: "torn")))
        guard case .proceed(_, false) = try store.begin(key: "torn", user: "u", requestDigest: "d") else {
            Issue.record(Comment(rawValue: "a torn reservation was read as one"))
            return
        }
    }

    @Test func anExpiredRecordFreesItsKeyAndPruningRemovesOnlyUnheldExpiredOnes() throws {
        let store = try keys(ttl: 60)
        let past = Date().addingTimeInterval(-120)
        guard
            case .proceed(let old, _) = try store.begin(key: "old", user: "u", requestDigest: "d", count: 1, now: past)
        else {
            Issue.record(Comment(rawValue: "not proceeding"))
            return
        }
        try old.finish(answer: Array("{}".utf8))
        guard case .proceed(let renewed, false) = try store.begin(key: "old", user: "u", requestDigest: "other") else {
            Issue.record(Comment(rawValue: "an expired key still bound"))
            return
        }
        renewed.release()
        try FileManager.default.setAttributes([.modificationDate: past], ofItemAtPath: record(key: "old"))
        guard case .proceed(let holding, _) = try store.begin(key: "held", user: "u", requestDigest: "d") else {
            Issue.record(Comment(rawValue: "not proceeding"))
            return
        }
        try FileManager.default.setAttributes([.modificationDate: past], ofItemAtPath: record(key: "held"))
        #expect(try store.prune(now: Date()) == 1)
        #expect(!FileManager.default.fileExists(atPath: record(key: "old")))
        #expect(FileManager.default.fileExists(atPath: record(key: "held")))
        holding.release()
    }

    @Test(arguments: ["", String(repeating: "x", count: 257), "caf\u{e9}", "a\tb", "a\u{7f}"])
    func badKeysAreRefused(key: String) {
        #expect(IdempotencyKeys.problem(key) != nil)
    }

    @Test func goodKeysAreTaken() {
        #expect(IdempotencyKeys.problem(String(repeating: "~", count: 256)) == nil)
        #expect(IdempotencyKeys.problem("order 42/#?") == nil)
    }
}
