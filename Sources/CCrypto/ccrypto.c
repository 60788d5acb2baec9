#include "ccrypto.h"

#include <openssl/evp.h>

int ccrypto_sha256(const void *data, size_t length, uint8_t out[32]) {
    unsigned int written = 0;
    return EVP_Digest(data, length, out, &written, EVP_sha256(), NULL) == 1 && written == 32;
}
