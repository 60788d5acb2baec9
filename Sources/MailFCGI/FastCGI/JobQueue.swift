import DequeModule
import Dispatch
import Synchronization

/// A blocking first-in first-out queue from the event thread to the worker threads.
final class JobQueue: Sendable {
    private let jobs = Mutex(Deque<FastCGIConnection.Job?>())
    private let available = DispatchSemaphore(value: 0)

    func push(_ job: FastCGIConnection.Job) {
        jobs.withLock { $0.append(job) }
        available.signal()
    }

    /// Blocks until a job is there; nil tells the worker to exit.
    func pop() -> FastCGIConnection.Job? {
        available.wait()
        return jobs.withLock { $0.removeFirst() }
    }

    /// Drops the jobs no worker has started (their clients get no answer, and nothing was
    /// done for them) and tells `workers` workers to exit.
    func stop(workers: Int) {
        let dropped = jobs.withLock { queue in
            let count = queue.count
            queue = Deque(repeating: nil, count: workers)
            return count
        }
        for _ in 0..<(workers - min(workers, dropped)) { available.signal() }
    }
}
