import Foundation
import Logging
import MailModel
import Settings
import Testing

@testable import MailFCGI

/// The OpenAPI document and the code agree: the same routes, the same limits.
@Suite struct ContractTests {
    var document: [String: Any] {
        get throws {
            try #require(JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json)) as? [String: Any])
        }
    }

    @Test func theRouterAndTheDocumentHaveTheSameOperations() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("contract-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = try MailSettings(
            EnvironmentReader(variables: ["DATA_DIR": directory + "/data", "TEMPLATES_DIR": directory + "/templates"]),
            program: .responder
        )
        let router = try RouteTable.router(settings: settings, logger: Logger(label: "test"))
        let paths = try #require(try document["paths"] as? [String: [String: Any]])
        let methods = ["get", "post", "put", "patch", "delete"]
        let documented = Set(
            paths.flatMap { path, item in item.keys.filter(methods.contains).map { "\($0.uppercased()) \(path)" } }
        )
        #expect(router.operations == documented)
        #expect(router.operations.contains("DELETE /email/{request_id}"))
        // GET / lists them too (and /docs, which nginx serves).
        #expect(router.operations.isSubset(of: Set(RootRoute.endpoints.keys)))
    }

    @Test func theVersionIsTheDocumentsAndTheLimitsAreTheValidators() throws {
        let info = try #require(try document["info"] as? [String: Any])
        #expect(OpenAPIDocument.version == info["version"] as? String)
        let schemas = try #require((try document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let request = try #require((schemas["EmailRequestModel"] as? [String: Any])?["properties"] as? [String: Any])
        #expect((request["tags"] as? [String: Any])?["maxItems"] as? Int == EmailTag.maxCount)
        let tag = try #require((schemas["Tag"] as? [String: Any])?["properties"] as? [String: [String: Any]])
        #expect(tag["name"]?["pattern"] as? String == "^[A-Za-z0-9_-]{1,\(EmailTag.maxLength)}$")
        #expect((request["subject"] as? [String: Any])?["maxLength"] as? Int == HeaderText.maxSubject)
        let cc = try #require((request["cc"] as? [String: Any])?["oneOf"] as? [[String: Any]])
        #expect(cc.first?["maxItems"] as? Int == EmailRequest.maxRecipients)
        // The batch's documented size is MAX_BATCH's default.
        let paths = try #require(try document["paths"] as? [String: [String: Any]])
        let batch = try #require((paths["/emails/batch"]?["post"] as? [String: Any])?["requestBody"] as? [String: Any])
        let schema = ((batch["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"]
        let defaults = try MailSettings(EnvironmentReader(variables: [:]), program: .responder)
        #expect((schema as? [String: Any])?["maxItems"] as? Int == defaults.maxBatch)
    }
}
