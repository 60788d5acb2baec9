// Rendered-and-composed messages per second on one core: the `welcome` template rendered
// with swift-mustache (text and HTML), then composed as multipart/alternative with
// quoted-printable parts; beside it, a raw plain-text email composed without a template.
// Each figure is the median of 7 rounds of 2 seconds on one thread.
//
// usage: compose-bench [--rounds 7] [--seconds 2]   prints one JSON object.
import Composition
import Foundation
import MailModel
import Templates

var rounds = 7
var seconds = 2.0
var args = CommandLine.arguments.dropFirst().makeIterator()
while let arg = args.next() {
    switch arg {
    case "--rounds": rounds = Int(args.next()!)!
    case "--seconds": seconds = Double(args.next()!)!
    default: fatalError("unknown argument \(arg)")
    }
}

let directory = NSTemporaryDirectory() + "compose-bench-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: directory) }
let store = try TemplateStore(directory: directory)
let composer = MessageComposer(sender: Sender(address: "noreply@example.org", name: "Example"))
let variables: [String: JSONValue] = [
    "name": .string("Élodie Müller"), "username": .string("elodie"), "email": .string("elodie@example.com"),
    "signup_date": .string("2026-05-04"), "app_name": .string("MyApp 🎉"),
]

/// Messages per second over `seconds`, making one with `body` each time.
func rate(seconds: Double, _ body: () throws -> Int) rethrows -> Double {
    var count = 0
    var bytes = 0
    let start = Date()
    while Date().timeIntervalSince(start) < seconds {
        for _ in 0..<100 { bytes &+= try body() }
        count += 100
    }
    precondition(bytes > 0)
    return Double(count) / Date().timeIntervalSince(start)
}

@MainActor func email(subject: String, body: String, html: String?) -> QueuedEmail {
    let id = RequestID.make()
    return QueuedEmail(
        requestID: id,
        messageID: composer.makeMessageID(requestID: id),
        createdAt: Date(),
        toEmail: "elodie@example.com",
        subject: subject,
        body: body,
        htmlBody: html,
        format: html == nil ? .plain : .multipart
    )
}

var templated: [Double] = []
var raw: [Double] = []
for _ in 0..<rounds {
    templated.append(
        try rate(seconds: seconds) {
            let rendered = try store.render("welcome", variables: variables)
            return composer.compose(email(subject: rendered.subject, body: rendered.text, html: rendered.html)).data
                .count
        }
    )
    raw.append(
        rate(seconds: seconds) {
            composer.compose(
                email(subject: "Your code", body: "Your code is 123456.\nIt expires in 30 minutes.", html: nil)
            ).data.count
        }
    )
}
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
let report: [String: Any] = [
    "benchmark": "compose",
    "rounds": rounds,
    "seconds_per_round": seconds,
    "template_rendered_and_composed_per_second": median(templated).rounded(),
    "raw_composed_per_second": median(raw).rounded(),
]
print(
    String(
        decoding: try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]),
        as: UTF8.self
    )
)
