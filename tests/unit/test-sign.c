/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoding.h"
#include "fileio.h"
#include "macro.h"
#include "sha256.h"
#include "sign.h"
#include "tests.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);

static char tmpdir[] = "/tmp/test-sign-XXXXXX";

static int init(void) {
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int cleanup(void) {
        char cmd[512];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static char *path_in_tmp(const char *name) {
        static char buf[4][256];
        static unsigned k;
        char *p = buf[k++ % ELEMENTSOF(buf)];

        snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
        return p;
}

static void unhex(const char *s, uint8_t *out, size_t n) {
        CU_ASSERT_EQUAL_FATAL(hex_decode_exact(s, SIZE_MAX, out, n), 0);
}

/* RFC 8032 §7.1, TEST 1 to TEST 3. */
static const struct {
        const char *secret, *public, *message, *signature;
} rfc8032[] = {
        { "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
          "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
          "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
          "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" },
        { "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
          "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
          "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
          "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" },
        { "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
          "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
          "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
          "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a" },
};

static void test_rfc8032_vectors(void) {
        for (size_t i = 0; i < ELEMENTSOF(rfc8032); i++) {
                _cleanup_sign_key_ sign_key *k = NULL, *pub = NULL;
                uint8_t seed[SIGN_SEED_SIZE], pk[SIGN_PUBLIC_KEY_SIZE], got_pk[SIGN_PUBLIC_KEY_SIZE];
                uint8_t sig[SIGN_SIGNATURE_SIZE], got_sig[SIGN_SIGNATURE_SIZE], msg[8];
                size_t mlen = strlen(rfc8032[i].message) / 2;

                unhex(rfc8032[i].secret, seed, sizeof(seed));
                unhex(rfc8032[i].public, pk, sizeof(pk));
                unhex(rfc8032[i].signature, sig, sizeof(sig));
                unhex(rfc8032[i].message, msg, mlen);

                CU_ASSERT_EQUAL_FATAL(sign_key_from_seed(seed, &k), 0);
                CU_ASSERT(sign_key_has_private(k));
                CU_ASSERT_EQUAL_FATAL(sign_key_get_public_raw(k, got_pk), 0);
                CU_ASSERT_EQUAL(memcmp(got_pk, pk, sizeof(pk)), 0);

                /* Ed25519 is deterministic: the exact signature. */
                CU_ASSERT_EQUAL_FATAL(sign_buffer(k, msg, mlen, got_sig), 0);
                CU_ASSERT_EQUAL(memcmp(got_sig, sig, sizeof(sig)), 0);

                CU_ASSERT_EQUAL_FATAL(sign_key_from_public_raw(pk, sizeof(pk), &pub), 0);
                CU_ASSERT_FALSE(sign_key_has_private(pub));
                CU_ASSERT_EQUAL(verify_buffer(pub, msg, mlen, sig, sizeof(sig)), 0);
                sig[i * 7] ^= 0x01;
                CU_ASSERT_EQUAL(verify_buffer(pub, msg, mlen, sig, sizeof(sig)), -EBADMSG);
        }
}

static void test_round_trip_and_tamper(void) {
        _cleanup_sign_key_ sign_key *k = NULL, *other = NULL;
        static const char msg[] = "{\"id\":1,\"type\":\"create\"}";
        char tampered[sizeof(msg)];
        uint8_t sig[SIGN_SIGNATURE_SIZE];

        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&other), 0);
        CU_ASSERT_FALSE(sign_key_public_equal(k, other));
        CU_ASSERT(sign_key_public_equal(k, k));

        CU_ASSERT_EQUAL_FATAL(sign_buffer(k, msg, strlen(msg), sig), 0);
        CU_ASSERT_EQUAL(verify_buffer(k, msg, strlen(msg), sig, sizeof(sig)), 0);

        memcpy(tampered, msg, sizeof(msg));
        tampered[3] = 'x';
        CU_ASSERT_EQUAL(verify_buffer(k, tampered, strlen(tampered), sig, sizeof(sig)), -EBADMSG);
        /* A prefix of the message is another message. */
        CU_ASSERT_EQUAL(verify_buffer(k, msg, strlen(msg) - 1, sig, sizeof(sig)), -EBADMSG);
        CU_ASSERT_EQUAL(verify_buffer(other, msg, strlen(msg), sig, sizeof(sig)), -EBADMSG);

        /* Malformed input. */
        CU_ASSERT_EQUAL(verify_buffer(k, msg, strlen(msg), sig, sizeof(sig) - 1), -EINVAL);
        CU_ASSERT_EQUAL(verify_buffer(k, msg, strlen(msg), sig, 0), -EINVAL);
        CU_ASSERT_EQUAL(verify_buffer(k, msg, strlen(msg), NULL, 64), -EINVAL);
        CU_ASSERT_EQUAL(verify_buffer(NULL, msg, strlen(msg), sig, sizeof(sig)), -EINVAL);
        CU_ASSERT_EQUAL(sign_buffer(NULL, msg, 1, sig), -EINVAL);

        /* A signature of all ones is not even a valid encoding. */
        memset(sig, 0xff, sizeof(sig));
        CU_ASSERT_EQUAL(verify_buffer(k, msg, strlen(msg), sig, sizeof(sig)), -EBADMSG);
}

static void test_public_encodings(void) {
        _cleanup_sign_key_ sign_key *k = NULL, *a = NULL, *b = NULL, *c = NULL;
        _cleanup_free_ char *b64 = NULL, *pem = NULL;
        uint8_t raw[SIGN_PUBLIC_KEY_SIZE], sig[SIGN_SIGNATURE_SIZE];
        sign_key *untouched = (sign_key *) 0x1;

        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_raw(k, raw), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_base64url(k, &b64), 0);
        CU_ASSERT_EQUAL(strlen(b64), 43);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_pem(k, &pem), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(pem, "-----BEGIN PUBLIC KEY-----"));

        CU_ASSERT_EQUAL_FATAL(sign_key_from_public_raw(raw, sizeof(raw), &a), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_from_public_base64url(b64, &b), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_from_public_pem(pem, SIZE_MAX, &c), 0);
        CU_ASSERT(sign_key_public_equal(k, a));
        CU_ASSERT(sign_key_public_equal(k, b));
        CU_ASSERT(sign_key_public_equal(k, c));

        /* Public-only keys verify but do not sign. */
        CU_ASSERT_EQUAL_FATAL(sign_buffer(k, "m", 1, sig), 0);
        CU_ASSERT_EQUAL(verify_buffer(c, "m", 1, sig, sizeof(sig)), 0);
        CU_ASSERT_EQUAL(sign_buffer(a, "m", 1, sig), -ENOKEY);
        CU_ASSERT_EQUAL(sign_key_save_private_pem(a, path_in_tmp("nokey.pem")), -ENOKEY);

        /* Wrong lengths and bad text. */
        CU_ASSERT_EQUAL(sign_key_from_public_raw(raw, 31, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(sign_key_from_public_raw(raw, 33, &untouched), -EINVAL);
        b64[42] = '\0';
        CU_ASSERT_EQUAL(sign_key_from_public_base64url(b64, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(sign_key_from_public_base64url("not base64url!", &untouched), -EINVAL);
        CU_ASSERT_EQUAL(sign_key_from_public_pem("garbage", SIZE_MAX, &untouched), -EBADMSG);
        CU_ASSERT_PTR_EQUAL(untouched, (sign_key *) 0x1);
}

static void test_save_load_private(void) {
        _cleanup_sign_key_ sign_key *k = NULL, *l = NULL;
        _cleanup_free_ char *pem = NULL;
        const char *p = path_in_tmp("device.key");
        uint8_t sig[SIGN_SIGNATURE_SIZE];
        struct stat st;
        mode_t old = umask(0);
        size_t n;

        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&k), 0);
        /* Even with an open umask the key file is the owner's only. */
        CU_ASSERT_EQUAL_FATAL(sign_key_save_private_pem(k, p), 0);
        umask(old);
        CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);

        CU_ASSERT_EQUAL_FATAL(read_full_file(p, 4096, &pem, &n), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(pem, "-----BEGIN PRIVATE KEY-----"));

        CU_ASSERT_EQUAL_FATAL(sign_key_load_private_pem(p, &l), 0);
        CU_ASSERT(sign_key_has_private(l));
        CU_ASSERT(sign_key_public_equal(k, l));
        CU_ASSERT_EQUAL_FATAL(sign_buffer(l, "x", 1, sig), 0);
        CU_ASSERT_EQUAL(verify_buffer(k, "x", 1, sig, sizeof(sig)), 0);

        /* Saving again replaces the file and keeps the mode. */
        CU_ASSERT_EQUAL_FATAL(sign_key_save_private_pem(l, p), 0);
        CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
}

static void test_load_bad_files(void) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = NULL;
        _cleanup_sign_key_ sign_key *k = NULL;
        _cleanup_free_ char *pem = NULL;
        sign_key *untouched = (sign_key *) 0x1;
        FILE *f;

        CU_ASSERT_EQUAL(sign_key_load_private_pem(path_in_tmp("missing.pem"), &untouched), -ENOENT);

        CU_ASSERT_EQUAL_FATAL(write_file_atomic(path_in_tmp("garbage.pem"), "hello\n", 6, 0600), 0);
        CU_ASSERT_EQUAL(sign_key_load_private_pem(path_in_tmp("garbage.pem"), &untouched), -EBADMSG);

        /* Looks like PEM, body is not a key. */
        static const char fake[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(path_in_tmp("fake.pem"), fake, strlen(fake), 0600), 0);
        CU_ASSERT_EQUAL(sign_key_load_private_pem(path_in_tmp("fake.pem"), &untouched), -EBADMSG);

        /* A public key where a private one is expected. */
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_pem(k, &pem), 0);
        CU_ASSERT_EQUAL(sign_key_from_private_pem(pem, SIZE_MAX, &untouched), -EBADMSG);

        /* A valid key of another type is rejected as such. */
        ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        CU_ASSERT_PTR_NOT_NULL_FATAL(ec);
        f = fopen(path_in_tmp("ec.pem"), "we");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(PEM_write_PrivateKey(f, ec, NULL, NULL, 0, NULL, NULL), 1);
        CU_ASSERT_EQUAL(PEM_write_PUBKEY(f, ec), 1);
        CU_ASSERT_EQUAL(fclose(f), 0);
        CU_ASSERT_EQUAL(sign_key_load_private_pem(path_in_tmp("ec.pem"), &untouched), -EKEYREJECTED);
        free(pem);
        pem = NULL;
        CU_ASSERT_EQUAL_FATAL(read_full_file(path_in_tmp("ec.pem"), 8192, &pem, NULL), 0);
        CU_ASSERT_EQUAL(sign_key_from_public_pem(strstr(pem, "-----BEGIN PUBLIC KEY"), SIZE_MAX, &untouched),
                        -EKEYREJECTED);

        CU_ASSERT_PTR_EQUAL(untouched, (sign_key *) 0x1);
}

static void test_digest_and_fd(void) {
        _cleanup_sign_key_ sign_key *k = NULL;
        _cleanup_close_ int fd = -1;
        const char *p = path_in_tmp("package.tar");
        uint8_t digest[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE], sig2[SIGN_SIGNATURE_SIZE];
        char content[10000];

        for (size_t i = 0; i < sizeof(content); i++)
                content[i] = (char) (i % 251);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, content, sizeof(content), 0644), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&k), 0);

        /* The package signature is Ed25519 over the raw SHA-256 digest. */
        CU_ASSERT_EQUAL_FATAL(sha256_buffer(content, sizeof(content), digest), 0);
        CU_ASSERT_EQUAL_FATAL(sign_digest(k, digest, sig), 0);
        CU_ASSERT_EQUAL_FATAL(sign_buffer(k, digest, sizeof(digest), sig2), 0);
        CU_ASSERT_EQUAL(memcmp(sig, sig2, sizeof(sig)), 0);
        CU_ASSERT_EQUAL(verify_digest(k, digest, sig, sizeof(sig)), 0);

        fd = open(p, O_RDONLY | O_CLOEXEC);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(verify_fd(k, fd, sig, sizeof(sig)), 0);
        CU_ASSERT_EQUAL_FATAL(lseek(fd, 0, SEEK_SET), 0);
        CU_ASSERT_EQUAL_FATAL(sign_fd(k, fd, sig2), 0);
        CU_ASSERT_EQUAL(memcmp(sig, sig2, sizeof(sig)), 0);
        fd = safe_close(fd);

        /* One flipped byte in the package. */
        content[5000] ^= 0x80;
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, content, sizeof(content), 0644), 0);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(verify_fd(k, fd, sig, sizeof(sig)), -EBADMSG);
        CU_ASSERT_EQUAL(verify_fd(k, -1, sig, sizeof(sig)), -EBADF);
        CU_ASSERT_EQUAL(verify_digest(k, digest, sig, 63), -EINVAL);
        digest[0] ^= 1;
        CU_ASSERT_EQUAL(verify_digest(k, digest, sig, sizeof(sig)), -EBADMSG);
}

static CU_TestInfo tests[] = {
        { "RFC 8032 vectors 1-3", test_rfc8032_vectors },
        { "round trip, tampering, wrong key, bad lengths", test_round_trip_and_tamper },
        { "public key encodings", test_public_encodings },
        { "private key file save/load, mode 0600", test_save_load_private },
        { "garbage, public and non-Ed25519 keys rejected", test_load_bad_files },
        { "package scheme: digest and fd", test_digest_and_fd },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("sign", tests, init, cleanup)
