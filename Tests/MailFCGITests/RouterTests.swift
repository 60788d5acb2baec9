import FastCGI
import Foundation
import Logging
import Testing

@testable import MailFCGI

/// The route table in process: methods, unknown paths, thrown errors, HEAD for GET.
@Suite struct RouterTests {
    struct Failure: Error {}

    var router: Router {
        var router = Router()
        router.add("GET", "/health") { _, _ in Response(status: 200, body: Array("ok".utf8)) }
        router.add("POST", "/email") { request, _ in
            guard !request.body.isEmpty else { throw HTTPError(422, "empty") }
            return Response(status: 200)
        }
        router.add("POST", "/broken") { _, _ in throw Failure() }
        return router
    }

    func request(_ method: String, _ path: String, body: String = "") -> Request {
        Request(method: method, path: path, query: "", contentType: nil, remoteUser: nil, body: Array(body.utf8))
    }

    @Test(arguments: [
        ("GET", "/health", "", 200),
        ("HEAD", "/health", "", 200),
        ("POST", "/health", "", 405),
        ("POST", "/email", "{}", 200),
        ("POST", "/email", "", 422),
        ("GET", "/email", "", 405),
        ("GET", "/nowhere", "", 404),
        ("GET", "/health/", "", 404),
        ("POST", "/broken", "", 500),
    ])
    func answers(method: String, path: String, body: String, status: Int) {
        #expect(router.respond(to: request(method, path, body: body), logger: Logger(label: "test")).status == status)
    }

    @Test func methodNotAllowedNamesTheAllowedMethods() {
        let response = router.respond(to: request("DELETE", "/health"), logger: Logger(label: "test"))
        #expect(response.headers.contains { $0 == ("Allow", "GET, HEAD") })
    }

    @Test func anUnexpectedErrorIsA500WithAnIdAndNoDetailOfIt() throws {
        let response = router.respond(to: request("POST", "/broken"), logger: Logger(label: "test"))
        let body = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
        #expect(body?["detail"] == "Internal server error")
        #expect(body?["error_id"]?.count == 36)
        #expect(!String(decoding: response.body, as: UTF8.self).contains("Failure"))
    }
}
