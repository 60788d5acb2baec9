import Digest
import Foundation
import MailModel
import Platform

#if canImport(Glibc)
import Glibc
#endif

/// Where suppressed addresses are kept, beside the emails (so a database store keeps both
/// in one place, for every host).
public protocol SuppressionStore: Sendable {
    /// The active suppression of `address` (compared by `Suppression.key`), or nil.
    func suppression(of address: String, now: Date) throws -> Suppression?
    /// Adds `suppression`, or replaces the one of the same address.
    func add(_ suppression: Suppression) throws
    /// Removes the suppression of `address`. Returns whether there was one.
    func remove(address: String) throws -> Bool
    /// Active suppressions ordered by key, after the key `after`, at most `limit`.
    func list(after: String?, limit: Int, now: Date) throws -> [Suppression]
    /// Deletes expired suppressions. Returns how many.
    func prune(now: Date) throws -> Int
}

/// The file store's suppression list: one small JSON file per address in
/// `data/suppressions/`, named by the SHA-256 of its key (so an address's characters never
/// reach a path, and a lookup is one open, no listing). Written atomically (temp, fsync,
/// rename, directory fsync): a suppression answered is not lost to a crash.
public final class FileSuppressionList: SuppressionStore {
    public let directory: String

    /// - Throws: `SystemError` if the folder cannot be created.
    public init(directory: String) throws {
        self.directory = directory
        try Syscall.makeDirectories(directory, mode: 0o750)
    }

    private func fileName(_ key: String) -> String { SHA256.hex(Array(key.utf8)) + ".json" }

    public func suppression(of address: String, now: Date) throws -> Suppression? {
        guard let found = try read(fileName(QueuedEmail.mailboxKey(address))) else { return nil }
        return found.isActive(at: now) ? found : nil
    }

    public func add(_ suppression: Suppression) throws {
        try AtomicFile.write(
            try QueueCoding.encoder().encode(suppression),
            to: fileName(suppression.key),
            in: directory
        )
    }

    public func remove(address: String) throws -> Bool {
        do {
            try Syscall.unlink(directory + "/" + fileName(QueuedEmail.mailboxKey(address)))
        } catch {
            if error.errno == ENOENT { return false }
            throw error
        }
        try Syscall.fsyncDirectory(directory)
        return true
    }

    public func list(after: String?, limit: Int, now: Date) throws -> [Suppression] {
        let all = try Syscall.listDirectory(directory).filter { !AtomicFile.isTemporary($0) && $0.hasSuffix(".json") }
            .compactMap { try read($0) }.filter { $0.isActive(at: now) }.sorted { $0.key < $1.key }
        return Array(all.filter { after == nil || $0.key > after! }.prefix(limit))
    }

    public func prune(now: Date) throws -> Int {
        var pruned = 0
        for name in try Syscall.listDirectory(directory) where !AtomicFile.isTemporary(name) && name.hasSuffix(".json")
        {
            if let found = try read(name), !found.isActive(at: now) {
                try? Syscall.unlink(directory + "/" + name)
                pruned += 1
            }
        }
        return pruned
    }

    private func read(_ name: String) throws -> Suppression? {
        let bytes: [UInt8]
        do {
            bytes = try Syscall.readFile(directory + "/" + name, followSymlinks: false, maxBytes: 64 << 10)
        } catch {
            if error.errno == ENOENT { return nil }
            throw error
        }
        return try? QueueCoding.decode(Suppression.self, from: bytes)
    }
}
