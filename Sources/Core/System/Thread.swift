#if canImport(Glibc)
import Glibc
#endif

/// Plain POSIX threads for the blocking loops (FastCGI accept, worker, watcher): each blocks
/// in a system call, which Swift's cooperative thread pool must never do.
public enum Thread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts `body` on a new pthread (pthread_create(3)) and returns it for pthread_join(3).
    /// A failure to create a thread is fatal: the programs cannot run without their threads.
    public static func spawn(_ body: @escaping () -> Void) -> pthread_t {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread,
            nil,
            { arg in
                let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
                box.body()
                return nil
            },
            box
        )
        precondition(result == 0, "pthread_create failed: \(result)")
        return thread
    }
}
