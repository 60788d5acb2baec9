import Foundation
// Lookups by request id (`GET /email/{request_id}`'s store call) at 1,000 and at 100,000
// stored emails: a lookup derives each possible name from the id and opens it, so its cost
// must not grow with the number of files beside it.
//
// Two data directories are filled first (setup, not timed): each holds `depth` stored
// emails, half delivered (`trash/B.sent.json`, found after a miss in `queue/` and in
// `queue/active/`) and half pending (`queue/B.json`, found at the first name). Then, in
// alternating slices, each depth in turn answers `lookups` lookups of random stored ids (both
// kinds); the median of the slices is reported, with the ratio of the large depth's rate to
// the small one's.
//
// With `--fill-only`, the data directories are filled (as the user `demo`'s emails) and kept,
// each with its ids in `ids.txt`, for bench/lookup_http.py to serve through the whole stack.
//
// usage: lookup-bench [--depths 1000,100000] [--lookups 2000] [--runs 11] [--dir PATH] [--fill-only]
// prints one JSON object.
import MailModel
import Queue

var depths = [1_000, 100_000]
var lookups = 2_000
var runs = 11
var root = NSTemporaryDirectory() + "lookup-bench-\(getpid())"
var fillOnly = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--depths": depths = arguments.next()!.split(separator: ",").map { Int($0)! }
    case "--lookups": lookups = Int(arguments.next()!)!
    case "--runs": runs = Int(arguments.next()!)!
    case "--dir": root = arguments.next()!
    case "--fill-only": fillOnly = true
    default: fatalError("unknown argument \(argument)")
    }
}

/// Writes `depth` emails, every other one delivered; returns their ids.
func fill(_ layout: QueueLayout, depth: Int) throws -> [String] {
    try layout.create()
    let encoder = QueueCoding.encoder()
    var start = Date().addingTimeInterval(-86_400)
    var ids: [String] = []
    for n in 0..<depth {
        start.addTimeInterval(0.001)
        let id = RequestID.make(at: start)
        let email = QueuedEmail(
            requestID: id,
            messageID: "<\(id)@bench>",
            createdAt: start,
            toEmail: "user\(n)@example.com",
            subject: "bench \(n)",
            body: String(repeating: "x", count: 400),
            submittedBy: "demo"
        )
        let base = RequestID.fileBaseName(for: id)!
        let path = n % 2 == 0 ? layout.trash + "/\(base).sent.json" : layout.queue + "/\(base).json"
        try encoder.encode(email).write(to: URL(fileURLWithPath: path))
        ids.append(id)
    }
    return ids
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

var stores: [(depth: Int, queue: FileQueue, ids: [String])] = []
for depth in depths {
    let layout = QueueLayout(root: root + "/depth-\(depth)")
    let ids = try fill(layout, depth: depth)
    stores.append((depth, try FileQueue(layout: layout), ids))
    if fillOnly {
        let list = ids.joined(separator: "\n") + "\n"
        try list.write(toFile: layout.root + "/ids.txt", atomically: true, encoding: .utf8)
    }
}
if fillOnly { exit(0) }
var rates: [Int: [Double]] = [:]
var generator = SystemRandomNumberGenerator()
for _ in 0..<runs {
    for store in stores {
        let picks = (0..<lookups).map { _ in store.ids.randomElement(using: &generator)! }
        let clock = ContinuousClock()
        let started = clock.now
        for id in picks {
            guard try store.queue.lookup(requestID: id) != nil else { fatalError("lookup failed for \(id)") }
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        rates[store.depth, default: []].append(Double(lookups) / seconds)
    }
}
try? FileManager.default.removeItem(atPath: root)
let results = depths.map { ["depth": $0, "lookups_per_second": median(rates[$0]!).rounded()] }
let ratio = median(rates[depths.last!]!) / median(rates[depths.first!]!)
let output: [String: Any] = [
    "benchmark": "lookup", "lookups_per_slice": lookups, "slices": runs, "results": results,
    "ratio_last_to_first": (ratio * 1000).rounded() / 1000,
]
print(String(decoding: try JSONSerialization.data(withJSONObject: output, options: [.sortedKeys]), as: UTF8.self))
