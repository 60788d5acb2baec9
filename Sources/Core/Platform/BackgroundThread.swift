import CLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One POSIX thread for a blocking loop (a worker's sends, inotify, accept), which Swift's
/// cooperative thread pool must never run, and the one way to wait for its end: `join()`
/// suspends the caller instead of blocking a pool thread in pthread_join(3).
///
/// The body is a `sending` closure, so the compiler checks that what it captures is handed
/// over to the thread (a worker's own agent and connection) or safe to share.
public final class BackgroundThread: Sendable {
    public let name: String
    private let state = Mutex<State>(State())

    private struct State {
        var finished = false
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private final class Start: @unchecked Sendable {
        // Handed to exactly one new thread, which runs it once (unchecked: pthread_create
        // passes it as a raw pointer).
        let body: () -> Void
        let thread: BackgroundThread
        init(_ body: sending @escaping () -> Void, thread: BackgroundThread) {
            self.body = body
            self.thread = thread
        }
    }

    /// Starts `body` on a new detached pthread (pthread_create(3)), named `name` for ps and
    /// debuggers. A failure to create a thread is fatal: the programs cannot run without them.
    public init(name: String, _ body: sending @escaping () -> Void) {
        self.name = name
        let start = Unmanaged.passRetained(Start(body, thread: self)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread,
            nil,
            { argument in
                let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
                _ = clinux_name_this_thread(start.thread.name)
                start.body()
                start.thread.finish()
                return nil
            },
            start
        )
        precondition(result == 0, "pthread_create failed: \(result)")
        pthread_detach(thread)
    }

    /// Whether the body has returned.
    public var isFinished: Bool {
        state.withLock { $0.finished }
    }

    /// Waits until the body has returned.
    public func join() async {
        _ = await join(timeout: nil)
    }

    /// Waits until the body has returned or `timeout` seconds have passed.
    /// - Returns: true when it returned in time.
    public func join(timeout: Double?) async -> Bool {
        if isFinished { return true }
        guard let timeout else {
            await withCheckedContinuation { continuation in
                if register(continuation) == nil { continuation.resume() }
            }
            return true
        }
        // The waiter is resumed by whichever comes first: the thread's end or the deadline.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            guard let id = register(continuation) else {
                continuation.resume()
                return
            }
            Task {
                try? await Task.sleep(for: .seconds(timeout))
                let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.resume()
            }
        }
        return isFinished
    }

    /// Adds a waiter; nil (not added) when the thread has already finished.
    private func register(_ continuation: CheckedContinuation<Void, Never>) -> Int? {
        state.withLock { state in
            guard !state.finished else { return nil }
            let id = state.nextWaiter
            state.nextWaiter += 1
            state.waiters[id] = continuation
            return id
        }
    }

    private func finish() {
        let waiters = state.withLock { state in
            state.finished = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}
