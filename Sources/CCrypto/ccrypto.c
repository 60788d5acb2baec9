#include "ccrypto.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

int ccrypto_sha256(const void *data, size_t length, uint8_t out[32]) {
    unsigned int written = 0;
    return EVP_Digest(data, length, out, &written, EVP_sha256(), NULL) == 1 && written == 32;
}

int ccrypto_hmac_sha256(const void *key, size_t key_length, const void *data, size_t length, uint8_t out[32]) {
    unsigned int written = 0;
    return HMAC(EVP_sha256(), key, (int)key_length, data, length, out, &written) != NULL && written == 32;
}

void *ccrypto_sha256_new(void) {
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (context != NULL && EVP_DigestInit_ex(context, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(context);
        return NULL;
    }
    return context;
}

int ccrypto_sha256_update(void *context, const void *data, size_t length) {
    return EVP_DigestUpdate((EVP_MD_CTX *)context, data, length);
}

int ccrypto_sha256_final(void *context, uint8_t out[32]) {
    unsigned int written = 0;
    int ok = EVP_DigestFinal_ex((EVP_MD_CTX *)context, out, &written) == 1 && written == 32;
    EVP_MD_CTX_free((EVP_MD_CTX *)context);
    return ok;
}

// OpenSSL's default would prompt on the terminal for an encrypted key's pass phrase and wait:
// a daemon must fail instead.
static int refuse_passphrase(char *buffer, int size, int writing, void *data) {
    (void)buffer;
    (void)size;
    (void)writing;
    *(int *)data = 1;
    return -1;
}

void *ccrypto_private_key_load(const char *path, char *error, size_t error_length) {
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        snprintf(error, error_length, "%s", strerror(errno));
        return NULL;
    }
    ERR_clear_error();
    int asked = 0;
    EVP_PKEY *key = PEM_read_PrivateKey(file, NULL, refuse_passphrase, &asked);
    fclose(file);
    if (key == NULL) {
        unsigned long code = ERR_get_error();
        if (asked) {
            snprintf(error, error_length,
                     "the key is encrypted; give an unencrypted PEM key (openssl pkey -in KEY -out PLAIN)");
        } else if (code == 0) {
            snprintf(error, error_length, "no PEM private key in the file");
        } else {
            ERR_error_string_n(code, error, error_length);
        }
    }
    return key;
}

void ccrypto_private_key_free(void *key) { EVP_PKEY_free((EVP_PKEY *)key); }

int ccrypto_key_type(void *key) {
    switch (EVP_PKEY_get_base_id((EVP_PKEY *)key)) {
    case EVP_PKEY_RSA:
        return CCRYPTO_KEY_RSA;
    case EVP_PKEY_ED25519:
        return CCRYPTO_KEY_ED25519;
    default:
        return CCRYPTO_KEY_OTHER;
    }
}

int ccrypto_key_bits(void *key) { return EVP_PKEY_get_bits((EVP_PKEY *)key); }

int ccrypto_public_key(void *key, uint8_t *out, size_t out_length) {
    EVP_PKEY *pkey = (EVP_PKEY *)key;
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
        size_t length = 0;
        if (EVP_PKEY_get_raw_public_key(pkey, NULL, &length) != 1) return -1;
        if (out != NULL && length <= out_length && EVP_PKEY_get_raw_public_key(pkey, out, &length) != 1) return -1;
        return (int)length;
    }
    int length = i2d_PUBKEY(pkey, NULL);
    if (length <= 0) return -1;
    if (out != NULL && (size_t)length <= out_length) {
        uint8_t *cursor = out;
        if (i2d_PUBKEY(pkey, &cursor) != length) return -1;
    }
    return length;
}

int ccrypto_sign(void *key, const void *data, size_t length, uint8_t *signature, size_t *signature_length) {
    EVP_PKEY *pkey = (EVP_PKEY *)key;
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (context == NULL) return 0;
    // Ed25519 takes no digest: it hashes inside (RFC 8032); RSA signs the SHA-256.
    const EVP_MD *digest = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    int ok = EVP_DigestSignInit(context, NULL, digest, NULL, pkey) == 1
        && EVP_DigestSign(context, signature, signature_length, data, length) == 1;
    EVP_MD_CTX_free(context);
    return ok;
}
