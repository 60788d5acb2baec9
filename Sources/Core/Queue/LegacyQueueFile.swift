import Foundation
import MailModel

/// A queue file of the Python service this one replaces (`../shared/reference/seed-spec.txt`):
/// the same `batch_{ms}_{uuid8}.json` names, but one object holding a list of emails,
/// `{batch_id, created_at, emails: [...]}`. mailworkerd converts each such file into one of
/// its own queue files per email (`FileQueue`), so mail queued by the old service is kept.
struct LegacyBatch: Decodable {
    /// Each email, or, for one that is not a valid email, its JSON as it was: one bad email
    /// must not cost the others, and is itself kept (in `corrupt/`), not dropped.
    var emails: [Result<LegacyEmail, Unreadable>]

    struct Unreadable: Error {
        var json: JSONValue
        var reason: String
    }

    private enum CodingKeys: String, CodingKey { case emails }

    init(from decoder: any Decoder) throws {
        var list = try decoder.container(keyedBy: CodingKeys.self).nestedUnkeyedContainer(forKey: .emails)
        emails = []
        while !list.isAtEnd {
            let json = try list.decode(JSONValue.self)
            do {
                let data = try JSONEncoder().encode(json)
                emails.append(.success(try QueueCoding.decoder().decode(LegacyEmail.self, from: data)))
            } catch {
                emails.append(.failure(Unreadable(json: json, reason: "\(error)")))
            }
        }
    }
}

/// One email of a `LegacyBatch`, as the Python service stored it: rendered (templates were
/// applied before enqueueing), with `created_at` in ISO 8601 local time without a zone.
struct LegacyEmail: Decodable {
    var requestID: String
    var subject: String?
    var body: String?
    var htmlBody: String?
    var format: String?
    var toEmail: String
    var cc: [String]?
    var bcc: [String]?
    var replyTo: String?
    var templateName: String?
    var priority: Int?
    var createdAt: String?
    var retryCount: Int?
    var lastError: String?

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id"
        case subject, body
        case htmlBody = "html_body"
        case format
        case toEmail = "to_email"
        case cc, bcc
        case replyTo = "reply_to"
        case templateName = "template_name"
        case priority
        case createdAt = "created_at"
        case retryCount = "retry_count"
        case lastError = "last_error"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requestID = try c.decode(String.self, forKey: .requestID)
        subject = try c.decodeIfPresent(String.self, forKey: .subject)
        body = try c.decodeIfPresent(String.self, forKey: .body)
        htmlBody = try c.decodeIfPresent(String.self, forKey: .htmlBody)
        format = try c.decodeIfPresent(String.self, forKey: .format)
        toEmail = try c.decode(String.self, forKey: .toEmail)
        cc = try? c.decodeIfPresent([String].self, forKey: .cc)
        bcc = try? c.decodeIfPresent([String].self, forKey: .bcc)
        replyTo = try? c.decodeIfPresent(String.self, forKey: .replyTo)
        templateName = try? c.decodeIfPresent(String.self, forKey: .templateName)
        // pydantic kept an int; a hand-edited file may hold "1".
        priority =
            (try? c.decodeIfPresent(Int.self, forKey: .priority))
            ?? (try? c.decodeIfPresent(String.self, forKey: .priority)).flatMap { $0.flatMap(Int.init) }
        createdAt = try? c.decodeIfPresent(String.self, forKey: .createdAt)
        retryCount = try? c.decodeIfPresent(Int.self, forKey: .retryCount)
        lastError = try? c.decodeIfPresent(String.self, forKey: .lastError)
    }

    /// The email as this service queues it, keeping its request id, retry count and
    /// priority; its Message-ID goes on `domain` (the sender's). Addresses are checked later,
    /// like any queue file's (`QueuedEmail.deliveryProblem`).
    func queued(messageIDDomain domain: String, now: Date) -> QueuedEmail {
        let created = createdAt.flatMap(Self.parseLocalTime) ?? now
        let kind = format.flatMap { EmailFormat(rawValue: $0.lowercased()) } ?? (htmlBody == nil ? .plain : .multipart)
        var email = QueuedEmail(
            requestID: requestID,
            messageID: "<\(requestID)@\(domain)>",
            createdAt: created,
            toEmail: toEmail,
            cc: cc ?? [],
            bcc: bcc ?? [],
            replyTo: replyTo,
            subject: subject ?? "",
            body: body ?? "",
            htmlBody: kind == .multipart ? htmlBody : nil,
            format: kind,
            priority: priority ?? 2,
            templateName: templateName
        )
        email.retryCount = max(0, retryCount ?? 0)
        email.lastError = lastError
        return email
    }

    /// `2026-11-30T06:35:46` or `2026-11-30T06:35:46.278123` (Python's `isoformat()` of a
    /// naive local time) in this machine's time zone; a time with a zone is parsed as such.
    static func parseLocalTime(_ text: String) -> Date? {
        if let zoned = Timestamp.parseISO8601(text),
            text.hasSuffix("Z") || text.dropFirst(19).contains(where: { $0 == "+" || $0 == "-" })
        {
            return zoned
        }
        let parts = text.split(separator: "T", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        let day = parts[0].split(separator: "-").compactMap { Int($0) }
        let clock = parts[1].split(separator: ":")
        guard day.count == 3, clock.count == 3, let hour = Int(clock[0]), let minute = Int(clock[1]),
            let seconds = Double(clock[2])
        else { return nil }
        var components = DateComponents(
            year: day[0],
            month: day[1],
            day: day[2],
            hour: hour,
            minute: minute,
            second: Int(seconds)
        )
        components.nanosecond = Int((seconds - seconds.rounded(.down)) * 1e9)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        return calendar.date(from: components)
    }

    /// The base name of the `index`-th email of the legacy file `base`: the legacy file's
    /// timestamp (so FIFO order holds) and 8 hex digits hashed from its name and the index
    /// (FNV-1a), the same on every run, so a conversion redone after a crash finds its work.
    static func convertedName(_ base: String, index: Int) -> String {
        let timestamp = base.split(separator: "_").dropFirst().first.map(String.init) ?? "0"
        var hash: UInt32 = 0x811C_9DC5
        for byte in "\(base)#\(index)".utf8 {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        return "batch_\(timestamp)_" + String(hash, radix: 16).leftPadded(to: 8)
    }
}
