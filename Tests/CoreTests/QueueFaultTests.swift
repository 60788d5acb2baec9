import Foundation
import Testing

@testable import Delivery
@testable import MailModel
@testable import Platform
@testable import Queue
@testable import Status

/// What a crash between two steps leaves, and the entries that are not what they seem:
/// recovery resolves each without stopping, and strangers go to `corrupt/`.
@Suite struct QueueFaultTests {
    let dir = TemporaryDirectory()

    func makeQueue() throws -> FileQueue {
        try FileQueue(layout: QueueLayout(root: dir.path))
    }

    func write(_ text: String, to sub: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir.path + "/" + sub))
    }

    /// A claimed email whose owner died (the kernel dropped its lock) with `body` done first.
    func deadClaim(_ queue: FileQueue, then body: (QueueClaim) throws -> Void) throws -> QueueClaim {
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        try body(claim)
        claim.lock?.release()
        return claim
    }

    @Test func aCrashAfterTheDeferralWasWrittenLeavesTheNewerPendingCopy() throws {
        let queue = try makeQueue()
        let claim = try deadClaim(queue) { claim in
            // What markFailed does before it unlinks the claim.
            var deferred = claim.email
            deferred.retryCount = 1
            deferred.nextAttemptAt = Date().addingTimeInterval(60)
            try AtomicFile.write(
                try QueueCoding.encoder().encode(deferred),
                to: claim.name + ".json",
                in: dir.path + "/queue"
            )
        }
        let restarted = try makeQueue()
        #expect(try restarted.recoverClaims() == 0)
        #expect(dir.entries("queue/active") == [])
        #expect(dir.entries("queue").contains(claim.name + ".json"))
        let kept = try QueueCoding.decoder().decode(
            QueuedEmail.self,
            from: Data(contentsOf: URL(fileURLWithPath: dir.path + "/queue/" + claim.name + ".json"))
        )
        #expect(kept.retryCount == 1)
        #expect(restarted.problems == [])
    }

    @Test func aCrashAfterTheDeadLetterWasWrittenRemovesTheClaim() throws {
        let queue = try makeQueue()
        let claim = try deadClaim(queue) { claim in
            let letter = DeadLetter(
                reason: "550",
                kind: .permanent,
                failedAt: Date(),
                attempts: [],
                email: claim.email
            )
            try AtomicFile.write(
                try QueueCoding.encoder().encode(letter),
                to: claim.name + ".json",
                in: dir.path + "/dead_letter"
            )
        }
        #expect(try makeQueue().recoverClaims() == 0)
        #expect(dir.entries("queue/active") == [])
        #expect(!dir.entries("queue").contains(claim.name + ".json"))
        #expect(dir.entries("dead_letter") == [claim.name + ".json"])
    }

    @Test func aDeadLetterOlderThanTheClaimDoesNotStopItsRetry() throws {
        let queue = try makeQueue()
        let e = queuedEmail()
        let base = RequestID.fileBaseName(for: e.requestID)!
        try write("{}", to: "dead_letter/" + base + ".json")  // an operator requeued it and kept this
        usleep(20_000)
        try queue.enqueue(e)
        let claim = try #require(try queue.claim(now: Date()))
        claim.lock?.release()
        #expect(try makeQueue().recoverClaims() == 1)
        #expect(dir.entries("queue").contains(base + ".json"))
    }

    @Test func aPendingCopyOlderThanTheClaimLosesToIt() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        let active = dir.path + "/queue/active/" + claim.name + ".processing.json"
        let pending = dir.path + "/queue/" + claim.name + ".json"
        // An older copy appears under the pending name, then the claim is renamed (its
        // change time moves past the copy's) and its owner dies.
        try write("{\"old\": true}", to: "queue/" + claim.name + ".json")
        usleep(20_000)
        try Syscall.rename(active, active + ".x")
        try Syscall.rename(active + ".x", active)
        claim.lock?.release()
        #expect(try makeQueue().recoverClaims() == 1)
        #expect(dir.entries("queue/active") == [])
        let restored = try QueueCoding.decoder().decode(
            QueuedEmail.self,
            from: Data(contentsOf: URL(fileURLWithPath: pending))
        )
        #expect(restored.requestID == claim.email.requestID)
    }

    @Test func recoveryGoesOnPastAnEntryItCannotHandle() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail(0))
        let orphan = try #require(try queue.claim(now: Date()))
        orphan.lock?.release()
        try FileManager.default.createDirectory(
            atPath: dir.path + "/queue/active/batch_1_00000000.processing.json",
            withIntermediateDirectories: false
        )
        try write("x", to: "queue/active/notes.txt")
        #expect(try makeQueue().recoverClaims() == 1)
        #expect(dir.entries("queue").contains(orphan.name + ".json"))
        let corrupt = dir.entries("corrupt")
        #expect(corrupt.count == 2)
        #expect(corrupt.contains { $0.hasPrefix("batch_1_00000000.processing.json.not_regular.") })
        #expect(corrupt.contains { $0.hasPrefix("notes.txt.stray_entry.") })
    }

    @Test func aSymlinkIsSetAsideAndItsTargetIsNeitherSentNorTouched() throws {
        let queue = try makeQueue()
        let outside = dir.path + "/outside.json"
        let target = queuedEmail(9)
        try Data(try QueueCoding.encoder().encode(target)).write(to: URL(fileURLWithPath: outside))
        let past = Date(timeIntervalSince1970: 1_000_000_000)
        try FileManager.default.setAttributes([.modificationDate: past], ofItemAtPath: outside)
        try FileManager.default.createSymbolicLink(
            atPath: dir.path + "/queue/batch_1_00000001.json",
            withDestinationPath: outside
        )
        try queue.enqueue(queuedEmail(0))
        let claim = try #require(try queue.claim(now: Date()))
        #expect(claim.email.toEmail == "u0@example.com")
        #expect(try queue.claim(now: Date()) == nil)
        #expect(dir.entries("corrupt").contains { $0.hasPrefix("batch_1_00000001.processing.json.symlink.") })
        let attributes = try FileManager.default.attributesOfItem(atPath: outside)
        #expect(attributes[.modificationDate] as? Date == past)
    }

    @Test func aDirectoryOrFIFONamedLikeAQueueFileIsSetAsideWithoutBlocking() throws {
        let queue = try makeQueue()
        try FileManager.default.createDirectory(
            atPath: dir.path + "/queue/batch_1_00000002.json",
            withIntermediateDirectories: false
        )
        #expect(mkfifo(dir.path + "/queue/batch_1_00000003.json", 0o644) == 0)
        #expect(try queue.claim(now: Date()) == nil)
        let corrupt = dir.entries("corrupt")
        #expect(corrupt.filter { $0.contains(".not_regular.") }.count == 2)
        #expect(dir.entries("queue") == ["active"])
    }

    @Test(arguments: ["u@example.com\r\nRCPT TO:<x@evil.example>", "not an address"])
    func aHandWrittenFileWithABadAddressIsSetAside(_ address: String) throws {
        let queue = try makeQueue()
        var bad = queuedEmail(0)
        bad.cc = [address]
        try Data(try QueueCoding.encoder().encode(bad)).write(
            to: URL(fileURLWithPath: dir.path + "/queue/" + RequestID.fileBaseName(for: bad.requestID)! + ".json")
        )
        #expect(try queue.claim(now: Date()) == nil)
        #expect(dir.entries("corrupt").count == 1)
        #expect(dir.entries("corrupt").first?.contains(".invalid_address.") == true)
    }

    @Test func aDateOnlyNextAttemptIsMidnightUTC() throws {
        let date = try #require(Timestamp.parseISO8601("2026-11-30"))
        #expect(date == Date(timeIntervalSince1970: 1_795_996_800))
        let queue = try makeQueue()
        var e = queuedEmail()
        e.nextAttemptAt = date
        var json = String(decoding: try QueueCoding.encoder().encode(e), as: UTF8.self)
        json = json.replacingOccurrences(of: Timestamp.iso8601(date), with: "2026-11-30")
        try write(json, to: "queue/" + RequestID.fileBaseName(for: e.requestID)! + ".json")
        let claim = try #require(try queue.claim(now: Date()))
        #expect(claim.email.nextAttemptAt == date)
    }

    @Test func aFolderOnAnotherFilesystemIsRefused() throws {
        guard (try? Syscall.device(of: "/dev/shm")) != (try? Syscall.device(of: dir.path)) else { return }
        let elsewhere = "/dev/shm/queuefault-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: elsewhere) }
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/trash", withDestinationPath: elsewhere)
        #expect(throws: QueueLayoutError.crossesFilesystems(folder: dir.path + "/trash", queue: dir.path + "/queue")) {
            _ = try makeQueue()
        }
    }

    @Test func intakeStopsBelowTheFreeSpaceReserve() throws {
        let queue = try FileQueue(layout: QueueLayout(root: dir.path), minimumFree: (UInt64.max, 0))
        #expect(throws: QueueError.self) { try queue.enqueue(queuedEmail()) }
        #expect(dir.entries("queue") == ["active"])
    }

    @Test func aHeartbeatFromTheFutureIsStale() {
        let now = Date()
        #expect(WorkerStatus.isFresh(now.addingTimeInterval(-1), at: now))
        #expect(!WorkerStatus.isFresh(now.addingTimeInterval(-10), at: now))
        #expect(!WorkerStatus.isFresh(now.addingTimeInterval(3600), at: now))
    }
}

/// Faults a hostile review found after the first round: strangers under an outcome's name,
/// a trash that refuses renames, a claim taken over mid-send, odd names and sizes.
@Suite struct QueueTakeoverTests {
    let dir = TemporaryDirectory()

    func makeQueue() throws -> FileQueue {
        try FileQueue(layout: QueueLayout(root: dir.path))
    }

    @Test(arguments: ["symlink", "directory", "garbage", "another email"])
    func aStrangerNewerThanTheClaimDoesNotReplaceIt(_ kind: String) throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        let pending = dir.path + "/queue/" + claim.name + ".json"
        switch kind {
        case "symlink":
            try FileManager.default.createSymbolicLink(atPath: pending, withDestinationPath: "/etc/hostname")
        case "directory": try FileManager.default.createDirectory(atPath: pending, withIntermediateDirectories: false)
        case "garbage": try Data("not json".utf8).write(to: URL(fileURLWithPath: pending))
        default: try Data(try QueueCoding.encoder().encode(queuedEmail())).write(to: URL(fileURLWithPath: pending))
        }
        claim.lock?.release()
        #expect(try makeQueue().recoverClaims() == 1)
        let restored = try QueueCoding.decoder().decode(
            QueuedEmail.self,
            from: Data(contentsOf: URL(fileURLWithPath: pending))
        )
        #expect(restored.requestID == claim.email.requestID)
        #expect(dir.entries("corrupt").count == 1)
    }

    @Test func aDeliveredEmailTheTrashRefusesIsKeptAsSentAndNeverPutBack() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        let trash = dir.path + "/trash"
        try FileManager.default.moveItem(atPath: trash, toPath: trash + ".away")
        try Data().write(to: URL(fileURLWithPath: trash))  // renames into it fail (ENOTDIR)
        try queue.markSent(claim, at: Date())  // recorded, though not filed yet
        #expect(dir.entries("queue/active") == [claim.name + ".sent.json"])
        #expect(try queue.recoverClaims() == 0)  // the trash still refuses: kept, named in problems
        #expect(queue.problems.count == 1)
        // What an orderly stop does with an unfinished claim: nothing to put back.
        try queue.abandonClaim(claim.name)
        #expect(dir.entries("queue") == ["active"])
        claim.lock?.release()
        try FileManager.default.removeItem(atPath: trash)
        try FileManager.default.moveItem(atPath: trash + ".away", toPath: trash)
        #expect(try makeQueue().recoverClaims() == 0)
        #expect(dir.entries("queue") == ["active"] && dir.entries("queue/active") == [])
        #expect(dir.entries("trash").count == 1 && dir.entries("trash")[0].contains(".sent."))
    }

    @Test func aClaimTakenOverMidSendIsNotRetriedForEverAndNotSentAgain() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        #expect(try queue.recoverClaims(lockedOlderThan: 0, now: Date().addingTimeInterval(1)) == 1)
        #expect(throws: QueueError.claimLost(claim.name)) { try queue.markSent(claim, at: Date()) }
        #expect(dir.entries("queue") == ["active"])  // still pending: filed as sent, nobody resends it
        #expect(dir.entries("trash").count == 1)
        let other = try makeQueue()
        #expect(try other.claim(now: Date()) == nil)
    }

    @Test func aDeferralOfAClaimTakenOverIsNotWritten() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        #expect(try queue.recoverClaims(lockedOlderThan: 0, now: Date().addingTimeInterval(1)) == 1)
        // The hung owner's lock is what keeps others off; here it lets go, and another claims.
        let stale = QueueClaim(name: claim.name, email: claim.email, token: ClaimLock(fd: -1))
        claim.lock?.release()
        let taken = try #require(try makeQueue().claim(now: Date()))
        #expect(throws: QueueError.claimLost(claim.name)) {
            _ = try queue.markFailed(
                stale,
                error: "451",
                permanent: false,
                at: Date(),
                policy: DeliveryPolicy(retry: RetryPolicy(maxRetries: 2, baseDelay: 60))
            )
        }
        #expect(dir.entries("queue") == ["active"])  // no second copy beside the new owner's claim
        try makeQueue().markSent(taken, at: Date())
    }

    @Test func anOddlyNamedFileDeferredForLaterIsNotClaimedInALoop() throws {
        let queue = try makeQueue()
        var e = queuedEmail()
        let later = Date().addingTimeInterval(3600)
        e.nextAttemptAt = later
        try Data(try QueueCoding.encoder().encode(e)).write(
            to: URL(fileURLWithPath: dir.path + "/queue/batch_restored.json")
        )
        #expect(try queue.claim(now: Date()) == nil)
        #expect(try queue.claim(now: Date()) == nil)
        #expect(abs((queue.nextDue ?? .distantPast).timeIntervalSince(later)) < 0.001)
        #expect(try queue.claim(now: later.addingTimeInterval(1))?.name == "batch_restored")
    }

    @Test func hardLinksAndHugeFilesAreSetAsideUnread() throws {
        let queue = try makeQueue()
        let e = queuedEmail()
        let name = RequestID.fileBaseName(for: e.requestID)! + ".json"
        let file = dir.path + "/queue/" + name
        try Data(try QueueCoding.encoder().encode(e)).write(to: URL(fileURLWithPath: file))
        #expect(link(file, dir.path + "/queue/batch_2_00000002.json") == 0)
        let huge = dir.path + "/queue/batch_3_00000003.json"
        #expect(FileManager.default.createFile(atPath: huge, contents: Data("{".utf8)))
        #expect(truncate(huge, off_t(QueueLayout.maxEntryBytes) + 1) == 0)  // sparse: no disk used
        #expect(try queue.claim(now: Date()) == nil)
        let corrupt = dir.entries("corrupt")
        #expect(corrupt.filter { $0.contains(".hard_link.") }.count == 2)
        #expect(corrupt.filter { $0.contains(".too_large.") }.count == 1)
    }

    @Test func aTrashRemovedWhileSendingIsRecreatedAndTheEmailFiledOnce() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        let claim = try #require(try queue.claim(now: Date()))
        try FileManager.default.removeItem(atPath: dir.path + "/trash")
        try queue.markSent(claim, at: Date())
        #expect(dir.entries("trash").count == 1)
        #expect(dir.entries("queue") == ["active"] && dir.entries("queue/active") == [])
    }

    @Test func aRemovedActiveFolderIsRecreatedByTheNextClaim() throws {
        let queue = try makeQueue()
        try queue.enqueue(queuedEmail())
        try FileManager.default.removeItem(atPath: dir.path + "/queue/active")
        #expect(try queue.claim(now: Date()) != nil)
    }

    @Test func recoveryLeavesTempFilesInActiveAloneAndRecreatesFolders() throws {
        let queue = try makeQueue()
        try Data().write(to: URL(fileURLWithPath: dir.path + "/queue/active/.tmp-rename-probe-x"))
        try FileManager.default.removeItem(atPath: dir.path + "/dead_letter")
        #expect(try queue.recoverClaims() == 0)
        #expect(dir.entries("corrupt") == [])
        #expect(dir.entries("queue/active") == [".tmp-rename-probe-x"])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/dead_letter"))
    }
}
