import Foundation
import Logging
import MailModel
import PostgresQueue
import Queue
import Synchronization

// The same measure for the PostgreSQL store (`claims-bench --postgres URL,URL`): claims per
// second at each depth, one database per depth so that each table holds only its own queue.
// A claim is a durable commit there (the lease must survive the worker's host), where the
// file queue's is a rename, so the figure is taken with a few threads as well as one: a
// worker pool's claims wait on the WAL flush together, and the server commits them in groups.

/// Figures of one depth at one thread count, one entry per round.
struct PostgresSamples {
    var claimRate: [Double] = []
    /// Claims plus the markSent that ends each (an UPDATE of the row, one more commit).
    var cycleRate: [Double] = []
}

/// Runs `body(i)` on `count` threads of its own (not Dispatch's pool, which has as many
/// threads as cores: the point is more threads than cores, each waiting on a commit), and
/// returns when all have.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let failure = Mutex<(any Error)?>(nil)
    let done = DispatchGroup()
    for i in 0..<count {
        done.enter()
        Thread {
            do { try body(i) } catch { failure.withLock { $0 = $0 ?? error } }
            done.leave()
        }.start()
    }
    done.wait()
    if let error = failure.withLock({ $0 }) { throw error }
}

/// The email a fill adds as the `n`th of its queue, created at `date`.
func benchEmail(_ n: Int, at date: Date) -> QueuedEmail {
    let id = RequestID.make(at: date)
    return QueuedEmail(
        requestID: id,
        messageID: "<\(id)@bench>",
        createdAt: date,
        toEmail: "user\(n)@example.com",
        subject: "bench \(n)",
        body: String(repeating: "x", count: 400),
        priority: 1 + n % 3
    )
}

/// Adds waiting emails until `store` holds `depth` of them, with the store's own batch
/// enqueue (what mailfcgi writes), each created after every row before it so that new rows
/// join the tail as arrivals do (setup, not timed).
func fill(_ store: PostgresQueueStore, to depth: Int, start: inout Date) throws {
    var pending = store.pendingCounts.pending
    while pending < depth {
        let emails = (pending..<min(depth, pending + 5_000)).map { n -> QueuedEmail in
            start.addTimeInterval(0.001)
            return benchEmail(n, at: start)
        }
        try store.enqueue(batch: emails)
        pending += emails.count
    }
}

/// The first fill of an empty queue, by COPY through psql: the store's enqueue inserts a row
/// a statement, about 3,000 a second here, which would spend half a minute of `make bench`
/// on 100,000 rows. The columns are those `enqueue` sets (the others keep their defaults),
/// the body the same QueueCoding JSON; then vacuumed, as autovacuum would soon have it.
func copyFill(_ url: String, count: Int, start: inout Date) throws {
    let encoder = QueueCoding.encoder()
    let iso = ISO8601DateFormatter()
    iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    // Bytes, not String.replacingOccurrences, which costs a third of a millisecond a row here.
    var csv: [UInt8] = []
    for n in 0..<count {
        start.addTimeInterval(0.001)
        let email = benchEmail(n, at: start)
        csv += Array("\(email.requestID.lowercased()),waiting,\(email.priority),\(iso.string(from: start)),\"".utf8)
        for byte in try encoder.encode(email) {
            csv.append(byte)
            if byte == UInt8(ascii: "\"") { csv.append(byte) }  // CSV doubles a quote inside quotes
        }
        csv += Array("\"\n".utf8)
    }
    _ = try psql(
        url,
        [
            "-c", "\\copy mail_emails (request_id, state, priority, created_at, body) FROM pstdin WITH (FORMAT csv)",
            "-c", "VACUUM ANALYZE mail_emails",
        ],
        input: csv
    )
}

/// Runs psql against `url` with `arguments` after the connection's, `input` on its stdin;
/// returns its output.
func psql(_ url: String, _ arguments: [String], input: [UInt8]? = nil) throws -> Data {
    let psql = Process()
    psql.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    psql.arguments = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url] + arguments
    let stdin = Pipe()
    let stdout = Pipe()
    psql.standardInput = stdin
    psql.standardOutput = stdout
    try psql.run()
    if let input { stdin.fileHandleForWriting.write(Data(input)) }
    try stdin.fileHandleForWriting.close()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    psql.waitUntilExit()
    guard psql.terminationStatus == 0 else { fatalError("psql \(arguments) against \(url) failed") }
    return output
}

/// The claim's choice of row as the server plans and runs it at this depth (EXPLAIN ANALYZE
/// of the store's subquery): the index it scans, the buffers it touches, its time. The row
/// it locks is let go when psql's transaction ends.
func explainClaim(_ url: String) throws -> [String: Any] {
    let output = try psql(
        url,
        [
            "-c",
            """
            EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT request_id FROM mail_emails
            WHERE state = 'waiting' AND (due_at IS NULL OR due_at <= now())
            ORDER BY priority, created_at, request_id LIMIT 1 FOR UPDATE SKIP LOCKED
            """,
        ]
    )
    let top = (try JSONSerialization.jsonObject(with: output) as! [[String: Any]])[0]
    var plan = top["Plan"] as! [String: Any]
    let buffers = (plan["Shared Hit Blocks"] as! Int) + (plan["Shared Read Blocks"] as! Int)
    while plan["Index Name"] == nil, let inner = (plan["Plans"] as? [[String: Any]])?.first { plan = inner }
    return [
        "scan": "\(plan["Node Type"] ?? "?") \(plan["Index Name"] ?? "")",
        "buffers": buffers,
        "execution_ms": top["Execution Time"] as! Double,
    ]
}

/// One round at one depth and thread count: `claims` claims over `threads` threads, then,
/// timed apart as with the file queue, the markSent ending each.
func postgresRound(
    _ store: PostgresQueueStore,
    depth: Int,
    threads: Int,
    claims: Int,
    clock: inout Date,
    into samples: inout PostgresSamples
) throws {
    try fill(store, to: depth, start: &clock)
    let perThread = min(claims, depth / 2) / threads
    let taken = Mutex<[QueueClaim]>([])
    let t0 = Date()
    try onThreads(threads) { _ in
        var mine: [QueueClaim] = []
        for _ in 0..<perThread {
            guard let claim = try store.claim(now: Date()) else { fatalError("queue ran dry at depth \(depth)") }
            mine.append(claim)
        }
        taken.withLock { $0 += mine }
    }
    let claimSeconds = Date().timeIntervalSince(t0)
    let claimed = taken.withLock { $0 }
    samples.claimRate.append(Double(claimed.count) / claimSeconds)
    let t1 = Date()
    try onThreads(threads) { i in
        for claim in claimed[(i * perThread)..<((i + 1) * perThread)] {
            try store.markSent(claim, record: nil, at: Date())
        }
    }
    samples.cycleRate.append(Double(claimed.count) / (claimSeconds + Date().timeIntervalSince(t1)))
}

/// The postgres mode's report: per depth, per thread count, the medians of the rounds.
func runPostgres(_ options: Options) throws -> [String: Any] {
    precondition(options.postgres.count == options.depths.count, "--postgres needs one URL per depth")
    var logger = Logger(label: "claims-bench")
    logger.logLevel = .error
    let stores = try options.postgres.map {
        try PostgresQueueStore(
            url: $0,
            program: "claims-bench",
            leaseDuration: 60,
            idempotencyTTL: 3600,
            logger: logger
        )
    }
    var clock = Date(timeIntervalSince1970: 1_700_000_000)
    var fillSeconds: [Double] = []
    for (i, depth) in options.depths.enumerated() {
        let t0 = Date()
        try copyFill(options.postgres[i], count: max(0, depth - stores[i].pendingCounts.pending), start: &clock)
        fillSeconds.append(Date().timeIntervalSince(t0))
    }
    var samples = Array(
        repeating: [PostgresSamples](repeating: .init(), count: options.threads.count),
        count: stores.count
    )
    // Depths and thread counts alternate within every round, as the file queue's depths do.
    for _ in 0..<options.runs {
        for (i, depth) in options.depths.enumerated() {
            for (j, threads) in options.threads.enumerated() {
                try postgresRound(
                    stores[i],
                    depth: depth,
                    threads: threads,
                    claims: options.claims,
                    clock: &clock,
                    into: &samples[i][j]
                )
            }
        }
    }
    // After the rounds, with their sent rows and the dead index entries their claims left.
    let plans = try options.postgres.map(explainClaim)
    let results: [[String: Any]] = options.depths.enumerated().map { i, depth in
        var byThreads: [String: Any] = [:]
        for (j, threads) in options.threads.enumerated() {
            byThreads["\(threads)"] = [
                "claims_per_second": median(samples[i][j].claimRate).rounded(),
                "claim_and_end_per_second": median(samples[i][j].cycleRate).rounded(),
            ]
        }
        return [
            "depth": depth, "fill_seconds": (fillSeconds[i] * 10).rounded() / 10, "by_threads": byThreads,
            "claim_plan_after_rounds": plans[i],
        ]
    }
    return [
        "benchmark": "claims_postgres",
        "claims_per_round": options.claims,
        "runs": options.runs,
        "threads": options.threads,
        "results": results,
    ]
}
