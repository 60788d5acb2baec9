// OpenSSL's libcrypto (Debian libssl-dev) for the digests and signatures the project needs,
// through its EVP interface, so Swift needs no OpenSSL types: keys are opaque pointers.
#ifndef CCRYPTO_H
#define CCRYPTO_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256 (FIPS 180-4) of `length` bytes at `data` into the 32 bytes at `out`.
/// Returns 1 on success, 0 when libcrypto failed (it does not, short of memory).
int ccrypto_sha256(const void *data, size_t length, uint8_t out[32]);

/// HMAC-SHA256 (RFC 2104) of `length` bytes at `data` with `key`, into the 32 bytes at `out`.
/// Returns 1 on success.
int ccrypto_hmac_sha256(const void *key, size_t key_length, const void *data, size_t length, uint8_t out[32]);

/// A SHA-256 computed piece by piece (EVP_DigestUpdate(3)): new, update any number of
/// times, final (which frees it). New returns NULL only without memory.
void *ccrypto_sha256_new(void);
int ccrypto_sha256_update(void *context, const void *data, size_t length);
int ccrypto_sha256_final(void *context, uint8_t out[32]);

/// Key types `ccrypto_key_type` reports.
enum { CCRYPTO_KEY_OTHER = 0, CCRYPTO_KEY_RSA = 1, CCRYPTO_KEY_ED25519 = 2 };

/// Reads a PEM private key (PKCS#8 or traditional RSA) from `path`. Returns NULL on
/// failure, with OpenSSL's reason (or the system's) in `error` (at most `error_length` bytes).
void *ccrypto_private_key_load(const char *path, char *error, size_t error_length);
void ccrypto_private_key_free(void *key);
/// CCRYPTO_KEY_RSA, CCRYPTO_KEY_ED25519 or CCRYPTO_KEY_OTHER.
int ccrypto_key_type(void *key);
/// The key's size in bits (RSA: its modulus).
int ccrypto_key_bits(void *key);
/// The public key as DNS records publish it for DKIM: RSA's SubjectPublicKeyInfo in DER
/// (RFC 6376 §3.6.1), Ed25519's 32 raw bytes (RFC 8463 §4). Returns its length, written to
/// `out` when `out_length` allows, or -1.
int ccrypto_public_key(void *key, uint8_t *out, size_t out_length);
/// Signs `length` bytes: RSA with RSASSA-PKCS1-v1_5 over their SHA-256 (RFC 8017 §8.2),
/// Ed25519 over the bytes themselves (RFC 8032 PureEdDSA). `*signature_length` holds the
/// room at `signature` and receives the signature's length. Returns 1 on success.
int ccrypto_sign(void *key, const void *data, size_t length, uint8_t *signature, size_t *signature_length);

#endif
