import Foundation
import Logging
import MailModel
import Mustache
import Platform
import Synchronization

/// The templates in `TEMPLATES_DIR`: loaded at start, reloaded when a file there changes
/// (checked on each use: a listing and a stat per file, so an edit needs no restart), and
/// described in `manifest.json`, which is rewritten whenever the templates change.
///
/// Files: `NAME.txt` makes a template; `NAME.html` adds its HTML part. Every file is also a
/// partial under its name (`{{> footer}}` includes `footer.txt` in text parts and
/// `footer.html` in HTML parts); names starting with `_` are partials only. An empty or
/// missing directory is given the four default templates first.
public final class TemplateStore: Sendable {
    public let directory: String
    private let logger: Logger
    private let loaded = Mutex<Snapshot>(Snapshot())

    struct Snapshot: Sendable {
        /// File name to (inode, size, mtime): what a reload compares.
        var signature: [String: [Int]] = [:]
        var templates: [String: EmailTemplate] = [:]
        var problems: [String: String] = [:]
        var textLibrary = MustacheLibrary()
        var htmlLibrary = MustacheLibrary()
    }

    /// - Throws: `SystemError` when the directory cannot be created or read.
    public init(directory: String, logger: Logger = Logger(label: "templates")) throws {
        self.directory = directory
        self.logger = logger
        try Syscall.makeDirectories(directory)
        if try !Syscall.listDirectory(directory).contains(where: { $0.hasSuffix(".txt") }) {
            for file in DefaultTemplates.files {
                try AtomicFile.write(Array(file.contents.utf8), to: file.name, in: directory, mode: 0o644)
            }
            logger.notice("wrote the default templates", metadata: ["directory": "\(directory)"])
        }
        _ = try current()
    }

    /// Template names, sorted.
    public func names() throws -> [String] {
        try current().templates.keys.sorted()
    }

    /// Template names, sorted, and the templates whose files cannot be used with the reason
    /// (for `/health`), read in one look at the directory.
    public func inventory() throws -> (names: [String], problems: [String: String]) {
        let snapshot = try current()
        return (snapshot.templates.keys.sorted(), snapshot.problems)
    }

    /// Renders template `name` with `variables`.
    /// - Throws: `TemplateError` (unknown name, missing variables, broken template), or
    ///   `SystemError` when the directory cannot be read.
    public func render(_ name: String, variables: [String: JSONValue]) throws -> RenderedTemplate {
        let snapshot = try current()
        guard let template = snapshot.templates[name] else {
            if let problem = snapshot.problems[name] { throw TemplateError.invalidTemplate(name, reason: problem) }
            throw TemplateError.unknownTemplate(name, available: snapshot.templates.keys.sorted())
        }
        let missing = template.placeholders.required.filter { variables[$0] == nil }
        if !missing.isEmpty { throw TemplateError.missingVariables(template: name, names: missing) }
        let context = variables.mapValues(\.mustacheValue)
        let subject = template.subject.render(context, library: snapshot.textLibrary)
        if HeaderText.controlCharacterProblem(subject) != nil || subject.unicodeScalars.count > HeaderText.maxSubject {
            throw TemplateError.subjectNotOneLine(template: name)
        }
        return RenderedTemplate(
            subject: subject,
            text: template.text.render(context, library: snapshot.textLibrary),
            html: template.html?.render(context, library: snapshot.htmlLibrary)
        )
    }

    /// What `GET /templates?detailed=true` and `manifest.json` say of each template.
    public struct Description: Codable, Equatable, Sendable {
        public struct Files: Codable, Equatable, Sendable {
            public var text: String
            public var html: String?
        }
        public var name: String
        public var description: String
        public var files: Files
        public var placeholders: [String]
    }

    /// Every template, sorted by name.
    public func describe() throws -> [Description] {
        let snapshot = try current()
        let descriptions = readManifest()
        return snapshot.templates.values.sorted { $0.name < $1.name }.map { template in
            Description(
                name: template.name,
                description: descriptions[template.name] ?? DefaultTemplates.descriptions[template.name] ?? "",
                files: .init(text: template.name + ".txt", html: template.html == nil ? nil : template.name + ".html"),
                placeholders: template.placeholders.all
            )
        }
    }

    // MARK: - Loading

    /// The templates as they are on disk now, reloading when any file changed.
    private func current() throws -> Snapshot {
        let signature = try readSignature()
        if let unchanged = loaded.withLock({ $0.signature == signature ? $0 : nil }) { return unchanged }
        let snapshot = load(signature)
        loaded.withLock { $0 = snapshot }
        for (name, problem) in snapshot.problems.sorted(by: { $0.key < $1.key }) {
            logger.error("template cannot be used", metadata: ["template": "\(name)", "reason": "\(problem)"])
        }
        writeManifest()
        return snapshot
    }

    /// Largest template file read, in bytes: swift-mustache's parser slows down sharply on
    /// big inputs, and no email template needs this much.
    public static let maxFileBytes = 256 * 1024

    /// Template names the API accepts (`template_name`): letters, digits, "_" and "-".
    public static func isUsableName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 100
            && name.unicodeScalars.allSatisfy {
                ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "_" || $0 == "-"
            }
    }

    /// Regular files only (a FIFO or device would block the reader).
    private func readSignature() throws -> [String: [Int]] {
        var signature: [String: [Int]] = [:]
        for name in try Syscall.listDirectory(directory) where name.hasSuffix(".txt") || name.hasSuffix(".html") {
            guard let info = Syscall.status(directory + "/" + name), (info.st_mode & S_IFMT) == S_IFREG else {
                continue
            }
            signature[name] = [Int(info.st_ino), Int(info.st_size), info.st_mtim.tv_sec, info.st_mtim.tv_nsec]
        }
        return signature
    }

    private func load(_ signature: [String: [Int]]) -> Snapshot {
        var snapshot = Snapshot()
        snapshot.signature = signature
        var sources: [String: (text: String?, html: String?)] = [:]
        for (file, stamp) in signature {
            let isHTML = file.hasSuffix(".html")
            let name = String(file.dropLast(isHTML ? 5 : 4))
            guard Self.isUsableName(name) else {
                snapshot.problems[name] = "\(file): template names are letters, digits, _ and -"
                continue
            }
            guard stamp[1] <= Self.maxFileBytes else {
                snapshot.problems[name] = "\(file) is larger than \(Self.maxFileBytes / 1024) KiB"
                continue
            }
            guard let bytes = try? Syscall.readFile(directory + "/" + file) else { continue }
            // CRLF files work too: lines (the subject line first) are split on LF.
            let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
            if isHTML {
                sources[name, default: (nil, nil)].html = text
            } else {
                sources[name, default: (nil, nil)].text = text
            }
            do {
                let template = try MustacheTemplate(string: isHTML ? text : EmailTemplate.textPragma + text)
                if isHTML {
                    snapshot.htmlLibrary.register(template, named: name)
                } else {
                    snapshot.textLibrary.register(template, named: name)
                }
            } catch {
                snapshot.problems[name] = MustacheErrorText.describe(error, file: file)
            }
        }
        for (name, source) in sources where !name.hasPrefix("_") && snapshot.problems[name] == nil {
            guard let text = source.text else { continue }  // an HTML file alone is a partial
            if let cycle = Self.partialCycle(from: name, sources: sources) {
                // swift-mustache looks a missing name up in outer contexts, so a partial that
                // includes itself never ends; it would exhaust the stack. Refused up front.
                snapshot.problems[name] = "partials include themselves: \(cycle.joined(separator: " > "))"
                continue
            }
            do {
                var template = try EmailTemplate(name: name, textSource: text, htmlSource: source.html)
                template.includePartials(from: sources)
                snapshot.templates[name] = template
            } catch {
                if case .invalidTemplate(_, let reason) = error {
                    snapshot.problems[name] = reason
                } else {
                    snapshot.problems[name] = error.description
                }
            }
        }
        return snapshot
    }

    /// A chain of partials from `name` back to one already in the chain, if there is one.
    static func partialCycle(from name: String, sources: [String: (text: String?, html: String?)]) -> [String]? {
        func partials(_ of: String) -> [String] {
            [sources[of]?.text, sources[of]?.html].compactMap { $0 }.flatMap { Placeholders(scanning: $0).partials }
        }
        var path: [String] = []
        func visit(_ node: String) -> [String]? {
            if let start = path.firstIndex(of: node) { return Array(path[start...]) + [node] }
            path.append(node)
            defer { path.removeLast() }
            for next in partials(node) { if let cycle = visit(next) { return cycle } }
            return nil
        }
        return visit(name)
    }

    // MARK: - Manifest

    private var manifestPath: String { directory + "/manifest.json" }

    private struct Manifest: Codable {
        var templates: [Description]
    }

    /// Descriptions from the current manifest, kept across regenerations.
    private func readManifest() -> [String: String] {
        guard let bytes = try? Syscall.readFile(manifestPath),
            let manifest = try? JSONDecoder().decode(Manifest.self, from: Data(bytes))
        else { return [:] }
        return Dictionary(manifest.templates.map { ($0.name, $0.description) }, uniquingKeysWith: { a, _ in a })
    }

    /// Rewrites manifest.json when what it would say changed. A read-only directory is
    /// logged, not fatal: the manifest is documentation, the templates still work.
    private func writeManifest() {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            var data = Array(try encoder.encode(Manifest(templates: try describe())))
            data.append(0x0A)
            if (try? Syscall.readFile(manifestPath)) == data { return }
            try AtomicFile.write(data, to: "manifest.json", in: directory, mode: 0o644)
        } catch {
            logger.warning("cannot write manifest.json", metadata: ["error": "\(error)"])
        }
    }
}

extension EmailTemplate {
    /// Adds the names used by included partials (one level per pass, at most 8 deep).
    mutating func includePartials(from sources: [String: (text: String?, html: String?)]) {
        var names = placeholders
        var seen: Set<String> = []
        var pending = placeholders.partials.map { ($0, placeholders.topLevelPartials.contains($0)) }
        var depth = 0
        while !pending.isEmpty, depth < 8 {
            var next: [(String, Bool)] = []
            for (partial, topLevel) in pending where seen.insert(partial).inserted {
                for source in [sources[partial]?.text, sources[partial]?.html].compactMap({ $0 }) {
                    let found = Placeholders(scanning: source)
                    names.merge(found, topLevel: topLevel)
                    next += found.partials.map { ($0, topLevel && found.topLevelPartials.contains($0)) }
                }
            }
            pending = next
            depth += 1
        }
        self = EmailTemplate(name: name, subject: subject, text: text, html: html, placeholders: names)
    }
}

extension JSONValue {
    /// The value swift-mustache renders: numbers and booleans print as their JSON text,
    /// `false`, `null` and empty lists close sections.
    var mustacheValue: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let value): return value
        case .int(let value): return value
        case .double(let value): return value
        case .string(let value): return value
        case .array(let values): return values.map(\.mustacheValue)
        case .object(let members): return members.mapValues(\.mustacheValue)
        }
    }
}
