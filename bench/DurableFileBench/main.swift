import Foundation
// The disk's rate of durable file creation, the ceiling for enqueueing: N threads each
// create files the way the queue does (write a temp file, fsync, rename, fsync the
// directory: `AtomicFile.write`), in one directory on the filesystem under test.
//
// usage: durable-file-bench --dir PATH [--threads 16,64] [--seconds 5] [--bytes 1200]
// prints one JSON object: files per second at each thread count.
import Platform
import Synchronization

var directory = ""
var threadCounts = [16, 64]
var seconds = 5.0
var size = 1200
var args = CommandLine.arguments.dropFirst().makeIterator()
while let arg = args.next() {
    switch arg {
    case "--dir": directory = args.next()!
    case "--threads": threadCounts = args.next()!.split(separator: ",").map { Int($0)! }
    case "--seconds": seconds = Double(args.next()!)!
    case "--bytes": size = Int(args.next()!)!
    default: fatalError("unknown argument \(arg)")
    }
}
precondition(!directory.isEmpty, "--dir is required")
try Syscall.makeDirectories(directory)
let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)

func rate(threads: Int, seconds: Double, directory: String, payload: [UInt8]) async -> Double {
    let count = Atomic<Int>(0)
    let deadline = Date().addingTimeInterval(seconds)
    let started = Date()
    var workers: [BackgroundThread] = []
    for t in 0..<threads {
        workers.append(
            BackgroundThread(name: "writer-\(t)") { @Sendable in
                var n = 0
                while Date() < deadline {
                    try! AtomicFile.write(payload, to: "f-\(t)-\(n).json", in: directory)
                    n += 1
                }
                count.add(n, ordering: .relaxed)
            }
        )
    }
    for worker in workers { await worker.join() }
    let elapsed = Date().timeIntervalSince(started)
    for name in (try? Syscall.listDirectory(directory)) ?? [] { try? Syscall.unlink(directory + "/" + name) }
    return Double(count.load(ordering: .relaxed)) / elapsed
}

var results: [String: Double] = [:]
for threads in threadCounts {
    results["\(threads)"] = await rate(threads: threads, seconds: seconds, directory: directory, payload: payload)
        .rounded()
}
let report: [String: Any] = [
    "benchmark": "durable_file_creation", "files_per_second_by_threads": results,
    "seconds": seconds, "bytes": size,
]
print(
    String(
        decoding: try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]),
        as: UTF8.self
    )
)
