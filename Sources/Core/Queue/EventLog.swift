import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// An event waiting to be delivered to the webhook, with its delivery attempts so far.
public struct PendingEvent: Codable, Sendable {
    public var event: DeliveryEvent
    /// Failed webhook attempts so far.
    public var attempts: Int
    /// Not to be sent before this (the retry schedule); nil: now.
    public var nextAttemptAt: Date?
    /// The last failure: an HTTP status or the transport's error.
    public var lastError: String?

    public init(event: DeliveryEvent, attempts: Int = 0, nextAttemptAt: Date? = nil, lastError: String? = nil) {
        self.event = event
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
    }

    enum CodingKeys: String, CodingKey {
        case event, attempts
        case nextAttemptAt = "next_attempt_at"
        case lastError = "last_error"
    }
}

/// Where delivery events wait for the webhook, beside the emails (a database store keeps
/// them in its tables). Every method may be called from any process.
public protocol EventStore: Sendable {
    /// Records `event` durably (when this returns, a crash does not lose it). Recording the
    /// same event id again replaces it (a redo after a crash).
    func record(_ event: DeliveryEvent) throws
    /// Pending events in the order they happened, each with its store name.
    func pending() throws -> [(name: String, event: PendingEvent)]
    /// The event was delivered (or is not wanted): it leaves the store.
    func delivered(_ name: String) throws
    /// The attempt failed: kept with its count and next time, or, `failed`, set aside for good.
    func retry(_ name: String, _ updated: PendingEvent, failed: Bool) throws
    /// Events given up (after the last retry), oldest first.
    func failed() throws -> [(name: String, event: PendingEvent)]
    /// Puts given-up events back to be sent again, their attempts reset. Returns how many.
    func resend(_ names: [String]) throws -> Int
    /// How many events wait, and how many were given up, without reading them.
    func backlog() throws -> (pending: Int, failed: Int)
    /// Whether this process is the one to send the events now: a store several hosts share
    /// lets one sender at a time deliver, so that an event is not sent by each of them.
    func isSender() -> Bool
}

extension EventStore {
    /// A store on one host has one sender: every process may send.
    public func isSender() -> Bool { true }
}

/// The file store's events: one JSON file per event in `data/events/pending/`, named by its
/// id, so that recording it again (a redo after a crash) replaces it and the names sort in
/// the order each email's events go out; given-up events in `data/events/failed/`. Written atomically (temp, fsync, rename,
/// directory fsync).
public final class FileEventLog: EventStore {
    public let pendingDirectory: String
    public let failedDirectory: String

    /// - Throws: `SystemError` if the folders cannot be created.
    public init(directory: String) throws {
        pendingDirectory = directory + "/pending"
        failedDirectory = directory + "/failed"
        try Syscall.makeDirectories(pendingDirectory, mode: 0o750)
        try Syscall.makeDirectories(failedDirectory, mode: 0o750)
    }

    /// `{event id}.json`: the ids sort by the email's acceptance, then by the event's place
    /// among its email's events, which is the order they go out in.
    static func name(_ event: DeliveryEvent) -> String { event.id + ".json" }

    public func record(_ event: DeliveryEvent) throws {
        try AtomicFile.write(
            try QueueCoding.encoder().encode(PendingEvent(event: event)),
            to: Self.name(event),
            in: pendingDirectory
        )
    }

    public func pending() throws -> [(name: String, event: PendingEvent)] {
        try read(pendingDirectory)
    }

    public func failed() throws -> [(name: String, event: PendingEvent)] {
        try read(failedDirectory)
    }

    private func read(_ directory: String) throws -> [(name: String, event: PendingEvent)] {
        try Syscall.listDirectory(directory).filter { !AtomicFile.isTemporary($0) && $0.hasSuffix(".json") }.sorted()
            .compactMap { name in
                guard
                    let bytes = try? Syscall.readFile(directory + "/" + name, followSymlinks: false, maxBytes: 1 << 20),
                    let event = try? QueueCoding.decode(PendingEvent.self, from: bytes)
                else { return nil }
                return (name, event)
            }
    }

    public func backlog() throws -> (pending: Int, failed: Int) {
        func count(_ directory: String) throws -> Int {
            try Syscall.listDirectory(directory).filter { !AtomicFile.isTemporary($0) && $0.hasSuffix(".json") }.count
        }
        return (try count(pendingDirectory), try count(failedDirectory))
    }

    public func delivered(_ name: String) throws {
        do { try Syscall.unlink(pendingDirectory + "/" + name) } catch { if error.errno != ENOENT { throw error } }
    }

    public func retry(_ name: String, _ updated: PendingEvent, failed: Bool) throws {
        try AtomicFile.write(
            try QueueCoding.encoder().encode(updated),
            to: name,
            in: failed ? failedDirectory : pendingDirectory
        )
        if failed { try delivered(name) }
    }

    public func resend(_ names: [String]) throws -> Int {
        var count = 0
        for name in names {
            guard let bytes = try? Syscall.readFile(failedDirectory + "/" + name, followSymlinks: false),
                var event = try? QueueCoding.decode(PendingEvent.self, from: bytes)
            else { continue }
            event.attempts = 0
            event.nextAttemptAt = nil
            try AtomicFile.write(try QueueCoding.encoder().encode(event), to: name, in: pendingDirectory)
            try Syscall.unlink(failedDirectory + "/" + name)
            count += 1
        }
        return count
    }
}
