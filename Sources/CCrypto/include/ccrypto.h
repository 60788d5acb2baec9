// OpenSSL's libcrypto (Debian libssl-dev) for the digests the project needs, through its
// one-shot EVP interface (EVP_Digest(3)), so Swift needs no OpenSSL types.
#ifndef CCRYPTO_H
#define CCRYPTO_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256 (FIPS 180-4) of `length` bytes at `data` into the 32 bytes at `out`.
/// Returns 1 on success, 0 when libcrypto failed (it does not, short of memory).
int ccrypto_sha256(const void *data, size_t length, uint8_t out[32]);

#endif
