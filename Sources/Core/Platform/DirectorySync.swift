#if canImport(Glibc)
import Glibc
#endif

/// Group commit of one directory's new entries: threads that each renamed a file into the
/// directory share one fsync(2) of it, instead of one each.
///
/// A thread calls `sync()` after its rename has returned. The first caller with no sync in
/// progress becomes the leader: it notes every rename registered so far, fsyncs the
/// directory, and wakes the others. A caller whose rename was registered after that sync
/// began waits for the next one, which covers it (one of the waiters leads it). So `sync()`
/// returns only when a directory fsync that began after the caller's rename has completed,
/// which is exactly the promise of a per-call fsync, at the cost of one fsync per group:
/// under load, while one sync runs, the renames of every other thread gather for the next.
/// (The same scheme as a database's group commit of its log, e.g. PostgreSQL's
/// `commit_delay`, here without any delay: a group is whoever arrived during the last sync.)
///
/// Failures: a failed fsync is thrown to every caller it was to cover, however many syncs
/// pass before that caller wakes, and the directory is opened anew for the next sync; callers
/// registered later are covered by later syncs.
public final class DirectorySync: @unchecked Sendable {
    /// The directory whose entries this syncs.
    public let path: String

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let finished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    // Guarded by `mutex`.
    private var registered: UInt64 = 0  // callers so far, in order: each caller's ticket
    private var durable: UInt64 = 0  // every ticket up to this one is covered by a completed sync
    private var syncing = false
    private var waiting = Set<UInt64>()  // tickets of the callers inside `sync()`
    private var failed: [UInt64: SystemError] = [:]  // waiting callers a failed sync was to cover
    private var descriptor: Int32 = -1
    private var syncs: UInt64 = 0

    /// Directory fsyncs done so far (callers / syncs is the mean group size).
    public var syncCount: UInt64 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return syncs
    }

    private let fsync: @Sendable (Int32, String) throws(SystemError) -> Void

    /// - Parameter path: the directory (opened at the first sync, kept open).
    public convenience init(path: String) {
        self.init(path: path) { descriptor, path throws(SystemError) in try Syscall.fsync(descriptor, path: path) }
    }

    /// With the fsync given (tests hold it to see who waits for which sync).
    init(path: String, fsync: @escaping @Sendable (Int32, String) throws(SystemError) -> Void) {
        self.path = path
        self.fsync = fsync
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(finished, nil)
    }

    /// Callers so far (tests).
    var registeredCount: UInt64 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return registered
    }

    deinit {
        if descriptor >= 0 { _ = Glibc.close(descriptor) }
        pthread_cond_destroy(finished)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        finished.deallocate()
    }

    /// Returns once every entry made in the directory before this call is durable.
    /// - Throws: `SystemError` from open(2) or fsync(2) of the sync meant to cover this call.
    public func sync() throws(SystemError) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        registered += 1
        let ticket = registered
        waiting.insert(ticket)
        defer { waiting.remove(ticket) }
        while true {
            // A failure first: a later sync's success does not cover an entry whose sync failed.
            if let error = failed.removeValue(forKey: ticket) { throw error }
            if durable >= ticket { return }
            if syncing {
                pthread_cond_wait(finished, mutex)
                continue
            }
            // Lead a sync covering every caller registered so far (their renames are done).
            syncing = true
            let after = durable
            let covers = registered
            pthread_mutex_unlock(mutex)
            let failure = syncOnce()
            pthread_mutex_lock(mutex)
            syncing = false
            syncs += 1
            if let failure {
                // Thrown to each caller it was to cover (this one included) as it wakes, kept
                // until then however many syncs come between. Callers up to `after` are
                // durable already: an earlier sync covered them, though some may not have woken.
                for waiter in waiting where waiter > after && waiter <= covers { failed[waiter] = failure }
            } else {
                durable = max(durable, covers)
            }
            pthread_cond_broadcast(finished)
        }
    }

    /// One fsync of the directory, outside the lock; nil on success. Only the leader calls
    /// it, so `descriptor` has one user at a time.
    private func syncOnce() -> SystemError? {
        do {
            if descriptor < 0 { descriptor = try Syscall.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            try fsync(descriptor, path)
            return nil
        } catch {
            // A fresh descriptor for the next sync: the failure is reported, here, once.
            if descriptor >= 0 { _ = Glibc.close(descriptor) }
            descriptor = -1
            return error
        }
    }
}
