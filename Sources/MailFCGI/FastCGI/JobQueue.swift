import DequeModule
import Dispatch
import Synchronization

/// A blocking first-in first-out queue between the event thread and the worker threads.
/// `nil` tells one worker to exit.
final class JobQueue: Sendable {
    private let jobs = Mutex(Deque<FastCGIConnection.Job?>())
    private let available = DispatchSemaphore(value: 0)

    func push(_ job: FastCGIConnection.Job?) {
        jobs.withLock { $0.append(job) }
        available.signal()
    }

    /// Blocks until a job (or a stop, `nil`) is there.
    func pop() -> FastCGIConnection.Job? {
        available.wait()
        return jobs.withLock { $0.removeFirst() }
    }
}
