// Rendered-and-composed messages per second on one core: the `welcome` template rendered
// with swift-mustache (text and HTML), then composed as multipart/alternative with
// quoted-printable parts; beside it, a raw plain-text email composed without a template, the
// same composed and DKIM-signed (rsa-sha256 with a 2048-bit key, ed25519-sha256), and an
// email with a 1 MiB attachment composed, and composed and signed. Every figure is the median
// of 7 rounds of 2 seconds on one thread; the rounds of all figures alternate.
//
// usage: compose-bench [--rounds 7] [--seconds 2]   prints one JSON object.
import Composition
import DKIM
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

/// A key made by `openssl genpkey` (the CLI, as scripts/dkim-keygen.sh does) in `directory`.
func makeKey(_ algorithm: [String], name: String) throws -> DKIMKey {
    let path = directory + "/" + name + ".pem"
    let openssl = Process()
    openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    openssl.arguments = ["genpkey"] + algorithm + ["-out", path]
    openssl.standardError = FileHandle.nullDevice  // its progress dots
    try openssl.run()
    openssl.waitUntilExit()
    precondition(openssl.terminationStatus == 0, "openssl genpkey failed")
    return try DKIMKey(path: path)
}
let rsa = DKIMSigner(
    domain: "example.org",
    selector: "bench",
    key: try makeKey(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], name: "rsa")
)
let ed25519 = DKIMSigner(
    domain: "example.org",
    selector: "bench",
    key: try makeKey(["-algorithm", "ED25519"], name: "ed")
)
/// 1 MiB of bytes that do not compress, in base64 as the API receives them.
let attachment = Attachment(
    filename: "report.pdf",
    contentType: "application/pdf",
    content: Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }).base64EncodedString()
)

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
var rsaSigned: [Double] = []
var edSigned: [Double] = []
var large: [Double] = []
var largeSigned: [Double] = []
@MainActor func small() -> QueuedEmail {
    email(subject: "Your code", body: "Your code is 123456.\nIt expires in 30 minutes.", html: nil)
}
@MainActor func withAttachment() -> QueuedEmail {
    var message = email(subject: "Your report", body: "The report is attached.", html: nil)
    message.attachments = [attachment]
    return message
}
/// Messages per second composed and signed by `signer`.
@MainActor func signed(_ signer: DKIMSigner, _ make: () -> QueuedEmail, seconds: Double) throws -> Double {
    try rate(seconds: seconds) {
        var message = composer.compose(make())
        try signer.sign(&message.data)
        return message.data.count
    }
}
var largeBytes = 0
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
    rsaSigned.append(try signed(rsa, small, seconds: seconds))
    edSigned.append(try signed(ed25519, small, seconds: seconds))
    // The large message is made fewer times: a round of it is as long as the others.
    large.append(
        rate(seconds: seconds) {
            largeBytes = composer.compose(withAttachment()).data.count
            return largeBytes
        }
    )
    largeSigned.append(try signed(rsa, withAttachment, seconds: seconds))
}
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
let report: [String: Any] = [
    "benchmark": "compose",
    "rounds": rounds,
    "seconds_per_round": seconds,
    "template_rendered_and_composed_per_second": median(templated).rounded(),
    "raw_composed_per_second": median(raw).rounded(),
    "raw_composed_and_signed_rsa_sha256_per_second": median(rsaSigned).rounded(),
    "raw_composed_and_signed_ed25519_sha256_per_second": median(edSigned).rounded(),
    // Signing's own cost per message: the time of compose + sign less that of compose alone.
    "rsa_sha256_sign_microseconds": ((1 / median(rsaSigned) - 1 / median(raw)) * 1e6).rounded(),
    "ed25519_sha256_sign_microseconds": ((1 / median(edSigned) - 1 / median(raw)) * 1e6).rounded(),
    "attachment_1mib_message_bytes": largeBytes,
    "attachment_1mib_composed_per_second": (median(large) * 10).rounded() / 10,
    "attachment_1mib_composed_and_signed_rsa_per_second": (median(largeSigned) * 10).rounded() / 10,
]
print(
    String(
        decoding: try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]),
        as: UTF8.self
    )
)
