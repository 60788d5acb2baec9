// Claims per second at a queue depth of 1,000 and of 100,000 pending files.
//
// For each depth: write N pending files (setup, not timed), let a FileQueue build its index
// (timed separately: it happens once, at start), then time up to 2,000 claims (at most half
// the depth, so the depth stays within a factor of two), each followed by the unlink that
// ends it. Repeated 5 times; the median is reported. Beside it, in the same
// run, a few claims made the way the seed's Python queue made them (list and sort the
// directory for every claim), to show what the index saves at depth.
//
// usage: claims-bench [--depths 1000,100000] [--claims 2000] [--runs 5] [--dir PATH]
// prints one JSON object.
import Core
import Foundation

struct Options {
    var depths = [1_000, 100_000]
    var claims = 2_000
    var scanClaims = 20
    var runs = 5
    var dir = NSTemporaryDirectory() + "claims-bench-\(getpid())"

    init(_ args: [String]) {
        var it = args.dropFirst().makeIterator()
        while let arg = it.next() {
            switch arg {
            case "--depths": depths = it.next()!.split(separator: ",").map { Int($0)! }
            case "--claims": claims = Int(it.next()!)!
            case "--runs": runs = Int(it.next()!)!
            case "--dir": dir = it.next()!
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
    let existing = try FileManager.default.contentsOfDirectory(atPath: layout.queue).count
    let encoder = QueueCoding.encoder()
    for n in existing..<depth {
        start.addTimeInterval(0.001)
        let id = RequestID.make(at: start)
        let email = QueuedEmail(requestID: id, messageID: "<\(id)@bench>", createdAt: start,
                                toEmail: "user\(n)@example.com", subject: "bench \(n)",
                                body: String(repeating: "x", count: 400), priority: 1 + n % 3)
        let name = RequestID.fileBaseName(for: id)! + ".json"
        try encoder.encode(email).write(to: URL(fileURLWithPath: layout.queue + "/" + name))
    }
}

func measure(depth: Int, options: Options) throws -> [String: Any] {
    let layout = QueueLayout(root: options.dir + "/depth-\(depth)")
    try layout.create()
    var clock = Date(timeIntervalSince1970: 1_700_000_000)
    var indexed: [Double] = [], indexedRates: [Double] = [], scanRates: [Double] = []
    for _ in 0..<options.runs {
        try fill(layout, to: depth, start: &clock)
        let queue = try FileQueue(layout: layout)
        queue.useChangeNotifications()  // as mailworkerd runs it: the index is trusted
        let buildStart = Date()
        let first = try queue.claim(now: Date())!
        indexed.append(Date().timeIntervalSince(buildStart))
        unlink(layout.queue + "/" + first.name + ".processing.json")

        let t0 = Date()
        let claims = min(options.claims, depth / 2)
        for _ in 0..<claims {
            let claim = try queue.claim(now: Date())!
            unlink(layout.queue + "/" + claim.name + ".processing.json")
        }
        indexedRates.append(Double(claims) / Date().timeIntervalSince(t0))

        try fill(layout, to: depth, start: &clock)
        let t1 = Date()
        for _ in 0..<options.scanClaims {
            // The seed's way: list, filter, sort, then rename the first.
            let names = try FileManager.default.contentsOfDirectory(atPath: layout.queue)
                .filter { $0.hasPrefix("batch_") && !$0.hasSuffix(".processing.json") }.sorted()
            let name = names[0]
            let claimed = layout.queue + "/" + name.replacingOccurrences(of: ".json", with: ".processing.json")
            rename(layout.queue + "/" + name, claimed)
            unlink(claimed)
        }
        scanRates.append(Double(options.scanClaims) / Date().timeIntervalSince(t1))
    }
    return [
        "depth": depth,
        "claims_per_second": median(indexedRates).rounded(),
        "scan_per_claim_per_second": median(scanRates).rounded(),
        "index_build_seconds": (median(indexed) * 1000).rounded() / 1000,
    ]
}

let options = Options(CommandLine.arguments)
defer { try? FileManager.default.removeItem(atPath: options.dir) }
var results: [[String: Any]] = []
for depth in options.depths {
    results.append(try measure(depth: depth, options: options))
}
let rates = results.map { $0["claims_per_second"] as! Double }
let report: [String: Any] = [
    "benchmark": "claims",
    "max_claims_per_run": options.claims,
    "runs": options.runs,
    "results": results,
    "ratio_last_to_first": rates.count > 1 ? (rates.last! / rates.first! * 1000).rounded() / 1000 : 1,
]
let json = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
print(String(decoding: json, as: UTF8.self))
