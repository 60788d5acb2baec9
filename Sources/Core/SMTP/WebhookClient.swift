import CCurl
import Foundation

/// POSTs webhook events with libcurl: one handle, reused (keep-alive) by the one thread that
/// sends events. TLS verification is on, as for the relay; http is refused by the settings
/// unless the URL is loopback.
public final class WebhookClient {
    private var handle: UnsafeMutableRawPointer?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
    /// Seconds for one whole request: no answer within it is a failure (retried).
    public let timeout: Int

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init(timeout: Int = 10) {
        Self.globalInit
        self.timeout = timeout
    }

    deinit {
        if let handle { curl_easy_cleanup(handle) }
        errorBuffer.deallocate()
    }

    /// Why a POST got no HTTP status.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// POSTs `body` (JSON) to `url` with `headers`; returns the HTTP status.
    /// - Throws: `Failure` when no answer came (connection, TLS, timeout).
    public func post(url: String, headers: [(String, String)], body: [UInt8]) throws(Failure) -> Int {
        if handle == nil { handle = curl_easy_init() }
        guard let handle else { throw Failure(description: "libcurl could not make a handle") }
        curl_easy_reset(handle)
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in headers + [("Content-Type", "application/json"), ("Expect", "")] {
            list = curl_slist_append(list, "\(name): \(value)")
        }
        defer { curl_slist_free_all(list) }
        errorBuffer[0] = 0
        let code: CURLcode = body.withUnsafeBytes { bytes in
            _ = ccurl_setopt_string(handle, CURLOPT_URL, url)
            _ = ccurl_setopt_long(handle, CURLOPT_POST, 1)
            _ = ccurl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            _ = ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, bytes.count)
            _ = ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, list)
            _ = ccurl_setopt_long(handle, CURLOPT_TIMEOUT, timeout)
            _ = ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, timeout)
            _ = ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            _ = ccurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)  // a redirect is not a delivery
            // The receiver's certificate and name are checked, as the relay's are (libcurl's
            // defaults, set here so no build or environment can turn them off).
            _ = ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
            _ = ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
            _ = ccurl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")  // no file:, no gopher:
            _ = ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
            _ = ccurl_setopt_write_function(handle, Self.discard)
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
            throw Failure(description: detail)
        }
        var status = 0
        _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return status
    }

    private static let discard: curl_write_callback = { _, size, count, _ in size * count }
}
