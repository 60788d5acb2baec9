import DequeModule
import Dispatch
import Synchronization

/// A blocking first-in first-out queue from one producer thread to a fixed set of worker
/// threads (the FastCGI server's event thread hands complete requests to its workers).
/// `pop` blocks its thread: for `BackgroundThread`s only, never from async code.
public final class JobQueue<Job: Sendable>: Sendable {
    private let jobs = Mutex(Deque<Job?>())
    private let available = DispatchSemaphore(value: 0)

    public init() {}

    public func push(_ job: Job) {
        jobs.withLock { $0.append(job) }
        available.signal()
    }

    /// Blocks until a job is there; nil tells the worker to exit.
    public func pop() -> Job? {
        available.wait()
        return jobs.withLock { $0.removeFirst() }
    }

    /// Drops the jobs no worker has started (their clients get no answer, and nothing was
    /// done for them) and tells `workers` workers to exit.
    public func stop(workers: Int) {
        let dropped = jobs.withLock { queue in
            let count = queue.count
            queue = Deque(repeating: nil, count: workers)
            return count
        }
        for _ in 0..<(workers - min(workers, dropped)) { available.signal() }
    }
}
