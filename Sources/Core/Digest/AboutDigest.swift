// Digest: message digests from OpenSSL's libcrypto (through the CCrypto shim), for names
// derived from untrusted text (idempotency keys) and for comparing request bodies.
//
// - `SHA256.swift`: SHA-256 of bytes, as bytes or lowercase hex.
// - `HMAC.swift`: HMAC-SHA256, for webhook signatures.
