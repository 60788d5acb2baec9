import Foundation

/// The OpenAPI 3.1 description of the API, served at `GET /openapi.json`: the committed
/// `openapi.json` beside this file (written by scripts/openapi.py), embedded in the binary.
enum OpenAPIDocument {
    /// The document's bytes, as committed.
    static let json: [UInt8] = PackageResources.openapi_json

    /// The API's version (`info.version`), also answered by `GET /`.
    static let version: String = {
        struct Head: Decodable {
            struct Info: Decodable { let version: String }
            let info: Info
        }
        return (try? JSONDecoder().decode(Head.self, from: Data(json)))?.info.version ?? "unknown"
    }()
}
