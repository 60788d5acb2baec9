import Foundation
import Testing

@testable import Composition
@testable import Templates

@Suite struct PlaceholdersTests {
    @Test func topLevelNamesAreRequiredAndSectionContentsAreNot() {
        let found = Placeholders(
            scanning: """
                {{greeting}} {{{raw}}} {{& amp}} {{! a comment }} {{user.name}}
                {{#items}}{{title}} {{.}}{{/items}}{{^empty}}{{fallback}}{{/empty}}{{> footer}}
                {{ uppercased(shout) }}
                """
        )
        #expect(found.required == ["greeting", "raw", "amp", "user", "items", "empty", "shout"])
        #expect(found.all.contains("title") && found.all.contains("fallback") && found.all.contains("user.name"))
        #expect(found.partials == ["footer"] && found.topLevelPartials == ["footer"])
    }
}

@Suite struct HTMLTextTests {
    @Test func blocksLinksListsAndEntities() {
        let html =
            "<h1>Hi</h1><p>A&nbsp;&amp;&#x42;&#67; <a href='https://x.y/z?a=1&amp;b=2'>link</a></p><ul><li>one</li></ul><script>no()</script>"
        #expect(HTMLText.plainText(html) == "Hi\n\nA\u{A0}&BC link (https://x.y/z?a=1&b=2)\n\n- one")
    }

    @Test func whiteSpaceCollapsesLikeABrowser() {
        #expect(HTMLText.plainText("  a \n\n  b  <br/>  c  ") == "a b\nc")
    }
}

@Suite struct TemplateStoreTests {
    let dir = TemporaryDirectory()

    @Test func anEmptyDirectoryGetsTheDefaultsAndAManifest() throws {
        let store = try TemplateStore(directory: dir.path)
        #expect(try store.names() == ["notification", "password_reset", "verify", "welcome"])
        let manifest =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path + "/manifest.json")))
            as? [String: Any]
        #expect((manifest?["templates"] as? [Any])?.count == 4)
    }

    @Test func theEmbeddedDefaultsAreTheRepositoryTemplates() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("templates")
        for file in DefaultTemplates.files {
            let onDisk = try String(contentsOf: repo.appendingPathComponent(file.name), encoding: .utf8)
            #expect(onDisk == file.contents, "run scripts/embed-templates.py after editing \(file.name)")
        }
    }

    @Test func rendersWithoutEscapingTextAndWithEscapingHTML() throws {
        let store = try TemplateStore(directory: dir.path)
        let rendered = try store.render(
            "notification",
            variables: [
                "title": .string("<b>&</b>"), "message": .string("it's"), "app_name": .string("A"),
            ]
        )
        #expect(rendered.subject == "<b>&</b>")
        #expect(rendered.text.contains("<b>&</b>") && rendered.text.contains("it's"))
        #expect(rendered.html?.contains("&lt;b&gt;&amp;&lt;/b&gt;") == true)
        #expect(rendered.html?.contains("it&#39;s") == true)
    }

    @Test func tripleMustacheInsertsTrustedHTMLUnescaped() throws {
        let store = try TemplateStore(directory: dir.path)
        try "Hi\n{{{snippet}}}\n".write(toFile: dir.path + "/raw.txt", atomically: true, encoding: .utf8)
        try "<div>{{{snippet}}} {{snippet}}</div>".write(
            toFile: dir.path + "/raw.html",
            atomically: true,
            encoding: .utf8
        )
        let rendered = try store.render("raw", variables: ["snippet": .string("<b>bold</b>")])
        #expect(rendered.html == "<div><b>bold</b> &lt;b&gt;bold&lt;/b&gt;</div>")
        #expect(rendered.text == "<b>bold</b>\n")
    }

    @Test func missingVariablesAreAllNamed() throws {
        let store = try TemplateStore(directory: dir.path)
        #expect(
            throws: TemplateError.missingVariables(
                template: "welcome",
                names: ["app_name", "username", "email", "signup_date"]
            )
        ) {
            try store.render("welcome", variables: ["name": .string("x")])
        }
    }

    @Test func aLineBreakInTheRenderedSubjectIsRefused() throws {
        let store = try TemplateStore(directory: dir.path)
        #expect(throws: TemplateError.subjectNotOneLine(template: "notification")) {
            try store.render(
                "notification",
                variables: ["title": .string("a\r\nBcc: x@y.z"), "message": .string("m"), "app_name": .string("a")]
            )
        }
    }

    @Test func changesOnDiskAreSeenAtTheNextRender() throws {
        let store = try TemplateStore(directory: dir.path)
        try "New {{x}}\nbody\n".write(toFile: dir.path + "/fresh.txt", atomically: true, encoding: .utf8)
        #expect(try store.render("fresh", variables: ["x": .int(7)]).subject == "New 7")
        try FileManager.default.removeItem(atPath: dir.path + "/fresh.txt")
        #expect(throws: TemplateError.self) { try store.render("fresh", variables: ["x": .int(7)]) }
    }
}
