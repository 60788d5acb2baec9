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
        router.add("GET", "/email/{request_id}") { _, parameters, _ in
            Response(status: 200, body: Array((parameters["request_id"] ?? "-").utf8))
        }
        router.add("DELETE", "/email/{request_id}") { _, _, _ in Response(status: 204) }
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
        ("GET", "/email/0190-abc", "", 200),
        ("DELETE", "/email/0190-abc", "", 204),
        ("PUT", "/email/0190-abc", "", 405),
        ("GET", "/email/", "", 404),
        ("GET", "/email/a/b", "", 404),
    ])
    func answers(method: String, path: String, body: String, status: Int) {
        #expect(router.respond(to: request(method, path, body: body), logger: Logger(label: "test")).status == status)
    }

    @Test func aPathParameterIsPassedAsSentAndALiteralPathWinsOverAPattern() {
        var router = self.router
        router.add("GET", "/email/latest") { _, _ in Response(status: 200, body: Array("literal".utf8)) }
        let logger = Logger(label: "test")
        #expect(router.respond(to: request("GET", "/email/x-1"), logger: logger).body == Array("x-1".utf8))
        #expect(router.respond(to: request("GET", "/email/latest"), logger: logger).body == Array("literal".utf8))
        let allow = router.respond(to: request("PUT", "/email/x"), logger: logger).headers
        #expect(allow.contains { $0 == ("Allow", "DELETE, GET, HEAD") })
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
