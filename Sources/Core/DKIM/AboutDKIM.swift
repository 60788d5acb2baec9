// DKIM: DomainKeys Identified Mail signatures (RFC 6376) for composed messages, made in
// mailworkerd just before a message goes to the relay, so the private key never enters mailfcgi.
//
// - `DKIMKey.swift`: the private key from a PEM file (OpenSSL's libcrypto through CCrypto),
//   its algorithm (rsa-sha256 from 2048 bits, ed25519-sha256 of RFC 8463) and DNS record.
// - `Canonicalization.swift`: the relaxed header and body canonicalizations (RFC 6376 §3.4).
// - `DKIMSigner.swift`: the DKIM-Signature header over a message, prepended in place.
