// Claims per second at a queue depth of 1,000 and of 100,000 pending files.
//
// Both queues are filled first (setup, not timed). Then, round after round, each depth in
// turn: top the queue up to its depth, let a fresh FileQueue build its index (timed apart:
// it happens once, when mailworkerd starts), then time 500 claims; then, timed apart, the
// unlink that ends each claim (a delivery ends its claim by a rename into the trash, which
// costs alike), for a claim-and-end rate. The depths alternate within every round so that both see the same
// machine noise; the median of the rounds is reported. Beside it, in the same run, a few
// claims made the way the seed's Python queue made them (list and sort the directory for
// every claim), to show what the index saves at depth; and the time GET /status's census
// takes at that depth once its cache is warm.
//
// With --postgres (one database URL per depth), the same for the PostgreSQL store instead
// (Postgres.swift): claim and markSent per second on 1 and a few threads.
//
// With --index-memory DEPTH, only the index's footprint: a queue of DEPTH pending files, a
// fresh FileQueue's index built by its first claim (holding at most QUEUE_ACTIVE_LIMIT's
// default), and the heap that index holds (malloc's bytes in use before and after, per
// pending email and per entry held), with this process's resident set.
// One depth per process, so that the peak resident set is that depth's.
//
// usage: claims-bench [--depths 1000,100000] [--claims 500] [--runs 15] [--dir PATH]
//        claims-bench --postgres URL,URL [--depths ...] [--threads 1,4] [--claims 500] [--runs 15]
//        claims-bench --index-memory 1000000 [--dir PATH]
// prints one JSON object.
import CLinux
import Foundation
import MailModel
import Queue

struct Options {
    var depths = [1_000, 100_000]
    var claims = 500
    var scanClaims = 20
    var runs = 15
    var dir = NSTemporaryDirectory() + "claims-bench-\(getpid())"
    var postgres: [String] = []
    var threads = [1, 4]
    var indexMemory: Int?

    init(_ args: [String]) {
        var it = args.dropFirst().makeIterator()
        while let arg = it.next() {
            switch arg {
            case "--depths": depths = it.next()!.split(separator: ",").map { Int($0)! }
            case "--claims": claims = Int(it.next()!)!
            case "--runs": runs = Int(it.next()!)!
            case "--dir": dir = it.next()!
            case "--postgres": postgres = it.next()!.split(separator: ",").map(String.init)
            case "--threads": threads = it.next()!.split(separator: ",").map { Int($0)! }
            case "--index-memory": indexMemory = Int(it.next()!)!
            default: fatalError("unknown argument \(arg)")
            }
        }
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Writes pending files until the queue holds `depth` of them (plain writes: setup only).
func fill(_ layout: QueueLayout, to depth: Int, start: inout Date) throws {
    let existing = try FileManager.default.contentsOfDirectory(atPath: layout.queue).filter { $0.hasPrefix("batch_") }
        .count
    let encoder = QueueCoding.encoder()
    for n in existing..<depth {
        start.addTimeInterval(0.001)
        let id = RequestID.make(at: start)
        let email = QueuedEmail(
            requestID: id,
            messageID: "<\(id)@bench>",
            createdAt: start,
            toEmail: "user\(n)@example.com",
            subject: "bench \(n)",
            body: String(repeating: "x", count: 400),
            priority: 1 + n % 3
        )
        let name = RequestID.fileBaseName(for: id)! + ".json"
        try encoder.encode(email).write(to: URL(fileURLWithPath: layout.queue + "/" + name))
    }
}

/// Figures of one depth, one entry per round.
struct Samples {
    var indexBuild: [Double] = []
    var claimRate: [Double] = []
    /// Claims plus the unlink that ends each (a delivery's own end, rename to trash, costs alike).
    var cycleRate: [Double] = []
    var scanRate: [Double] = []
    var census: [Double] = []
}

/// One round at one depth: index build, `claims` indexed claims, then `scanClaims` the seed's way.
func round(_ layout: QueueLayout, depth: Int, options: Options, clock: inout Date, into samples: inout Samples) throws {
    try fill(layout, to: depth, start: &clock)
    let queue = try FileQueue(layout: layout)
    queue.useChangeNotifications()  // as mailworkerd runs it: the index is trusted
    let buildStart = Date()
    let first = try queue.claim(now: Date())!
    samples.indexBuild.append(Date().timeIntervalSince(buildStart))
    unlink(layout.active + "/" + first.name + ".processing.json")

    // GET /status's census, after a first one has filled its cache (as on a live responder).
    let census = QueueCensus(layout: layout)
    _ = try census.take(limit: 100)
    try fill(layout, to: depth, start: &clock)
    let c0 = Date()
    _ = try census.take(limit: 100)
    samples.census.append(Date().timeIntervalSince(c0))

    let claims = min(options.claims, depth / 2)
    var taken: [QueueClaim] = []
    taken.reserveCapacity(claims)
    let t0 = Date()
    for _ in 0..<claims {
        taken.append(try queue.claim(now: Date())!)
    }
    let claimSeconds = Date().timeIntervalSince(t0)
    samples.claimRate.append(Double(claims) / claimSeconds)
    // Ending the claims is delivery's cost, not the claim's: timed apart, for the cycle rate.
    let t2 = Date()
    for claim in taken { unlink(layout.active + "/" + claim.name + ".processing.json") }
    samples.cycleRate.append(Double(claims) / (claimSeconds + Date().timeIntervalSince(t2)))
    taken.removeAll()

    try fill(layout, to: depth, start: &clock)
    let t1 = Date()
    for _ in 0..<options.scanClaims {
        // The seed's way: list, filter, sort, then rename the first.
        let names = try FileManager.default.contentsOfDirectory(atPath: layout.queue)
            .filter { $0.hasPrefix("batch_") && !$0.hasSuffix(".processing.json") }.sorted()
        let claimed = layout.queue + "/" + names[0].replacingOccurrences(of: ".json", with: ".processing.json")
        rename(layout.queue + "/" + names[0], claimed)
        unlink(claimed)
    }
    samples.scanRate.append(Double(options.scanClaims) / Date().timeIntervalSince(t1))
}

/// This process's resident set now and at its peak (VmRSS, VmHWM), MiB.
func residentMiB() -> (now: Double, peak: Double) {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Double {
        let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
    return (field("VmRSS"), field("VmHWM"))
}

/// The index's heap per pending email at `depth`, and how long its build took.
func indexFootprint(depth: Int, dir: String) throws -> [String: Any] {
    let layout = QueueLayout(root: dir + "/index-\(depth)")
    try layout.create()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var clock = Date(timeIntervalSince1970: 1_700_000_000)
    try fill(layout, to: depth, start: &clock)
    let filled = residentMiB()
    let before = clinux_heap_in_use()
    let queue = try FileQueue(layout: layout)
    queue.useChangeNotifications()
    let started = Date()
    guard try queue.claim(now: Date()) != nil else { fatalError("no claim from a full queue") }
    let seconds = Date().timeIntervalSince(started)
    let after = clinux_heap_in_use()
    let resident = residentMiB()
    let pending = queue.indexCounts.pending
    let held = queue.indexHeld
    return [
        "depth": depth, "pending": pending, "indexed": held, "active_limit": FileQueue.defaultActiveLimit,
        "index_bytes_per_pending": (Double(after - before) / Double(max(1, pending))).rounded(),
        "index_bytes_per_entry": (Double(after - before) / Double(max(1, held))).rounded(),
        "index_heap_mib": (Double(after - before) / 1_048_576 * 10).rounded() / 10,
        "index_build_seconds": (seconds * 1000).rounded() / 1000,
        "rss_mib_before_build": (filled.now * 10).rounded() / 10,
        "rss_mib_after_build": (resident.now * 10).rounded() / 10,
        "peak_rss_mib": (resident.peak * 10).rounded() / 10,
    ]
}

let options = Options(CommandLine.arguments)
if let depth = options.indexMemory {
    let json = try JSONSerialization.data(
        withJSONObject: try indexFootprint(depth: depth, dir: options.dir),
        options: [.prettyPrinted, .sortedKeys]
    )
    print(String(decoding: json, as: UTF8.self))
    exit(0)
}
if !options.postgres.isEmpty {
    let json = try JSONSerialization.data(
        withJSONObject: try runPostgres(options),
        options: [.prettyPrinted, .sortedKeys]
    )
    print(String(decoding: json, as: UTF8.self))
    exit(0)
}
defer { try? FileManager.default.removeItem(atPath: options.dir) }
let layouts = try options.depths.map { depth -> QueueLayout in
    let layout = QueueLayout(root: options.dir + "/depth-\(depth)")
    try layout.create()
    return layout
}
var clock = Date(timeIntervalSince1970: 1_700_000_000)
var samples = Array(repeating: Samples(), count: options.depths.count)
for _ in 0..<options.runs {
    for (i, depth) in options.depths.enumerated() {
        try round(layouts[i], depth: depth, options: options, clock: &clock, into: &samples[i])
    }
}
let results: [[String: Any]] = options.depths.enumerated().map { i, depth in
    [
        "depth": depth,
        "claims_per_second": median(samples[i].claimRate).rounded(),
        "scan_per_claim_per_second": median(samples[i].scanRate).rounded(),
        "index_build_seconds": (median(samples[i].indexBuild) * 1000).rounded() / 1000,
        "status_census_seconds": (median(samples[i].census) * 1000).rounded() / 1000,
        "claim_and_end_per_second": median(samples[i].cycleRate).rounded(),
    ]
}
let rates = results.map { $0["claims_per_second"] as! Double }
let cycles = results.map { $0["claim_and_end_per_second"] as! Double }
let report: [String: Any] = [
    "benchmark": "claims",
    "claims_per_round": options.claims,
    "runs": options.runs,
    "results": results,
    "ratio_last_to_first": rates.count > 1 ? (rates.last! / rates.first! * 1000).rounded() / 1000 : 1,
    "cycle_ratio_last_to_first": cycles.count > 1 ? (cycles.last! / cycles.first! * 1000).rounded() / 1000 : 1,
]
let json = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
print(String(decoding: json, as: UTF8.self))
