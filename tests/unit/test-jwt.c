/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "encoding.h"
#include "fileio.h"
#include "id.h"
#include "macro.h"
#include "sha256.h"
#include "sign.h"
#include "tests.h"
#include "token.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(jwt_t *, jwt_free);

#define ISS "https://idm.example.org"
#define AUD "https://registry.example.org"
#define TOKEN_URL "https://idm.example.org/idm/token"
#define ENDPOINT "urn:dev:ep:sensor-0042"
/* 2027-01-15T08:00:00Z */
#define T0 ((usec_t) 1800000000 * USEC_PER_SEC)

static char tmpdir[] = "/tmp/test-jwt-XXXXXX";

static int init(void) {
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int cleanup(void) {
        char cmd[512];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static char *path_in_tmp(const char *name) {
        static char buf[8][256];
        static unsigned k;
        char *p = buf[k++ % ELEMENTSOF(buf)];

        snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
        return p;
}

static void *mfree(void *p) {
        free(p);
        return NULL;
}

/* The same private key as an OpenSSL object, to forge tokens with
 * arbitrary headers and claims that our issuer would never produce. */
static EVP_PKEY *openssl_key(const token_key *k) {
        const char *p = path_in_tmp("forge.pem");
        EVP_PKEY *pkey;
        FILE *f;

        if (token_key_save_private_pem(k, p) < 0)
                return NULL;
        f = fopen(p, "re");
        if (!f)
                return NULL;
        pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        return pkey;
}

static char *b64(const void *p, size_t n) {
        char *s = NULL;

        CU_ASSERT_EQUAL_FATAL(base64url_encode(p, n, &s), 0);
        return s;
}

/* DER ECDSA signature to JWS R||S. */
static void der_to_raw(const unsigned char *der, size_t n, uint8_t raw[64]) {
        const unsigned char *q = der;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &q, (long) n);
        const BIGNUM *r, *ss;

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        ECDSA_SIG_get0(s, &r, &ss);
        CU_ASSERT_EQUAL_FATAL(BN_bn2binpad(r, raw, 32), 32);
        CU_ASSERT_EQUAL_FATAL(BN_bn2binpad(ss, raw + 32, 32), 32);
        ECDSA_SIG_free(s);
}

/* header.payload.signature, with an ES256 signature by signer. */
static char *forge(EVP_PKEY *signer, const char *header, const char *payload) {
        _cleanup_free_ char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload)), *input = NULL,
                            *sig = NULL;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char der[128];
        size_t der_len = sizeof(der);
        uint8_t raw[64];
        char *token;

        CU_ASSERT_FATAL(asprintf(&input, "%s.%s", h, p) > 0);
        CU_ASSERT_EQUAL_FATAL(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, signer, NULL), 1);
        CU_ASSERT_EQUAL_FATAL(EVP_DigestSign(ctx, der, &der_len, (unsigned char *) input, strlen(input)), 1);
        EVP_MD_CTX_free(ctx);
        der_to_raw(der, der_len, raw);
        sig = b64(raw, sizeof(raw));
        CU_ASSERT_FATAL(asprintf(&token, "%s.%s", input, sig) > 0);
        return token;
}

static char *header_with_kid(const token_key *k) {
        char *h;

        CU_ASSERT_FATAL(asprintf(&h, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", token_key_get_kid(k)) > 0);
        return h;
}

/* tmpl with its one "KID" replaced by kid. */
static char *replace_kid(const char *tmpl, const char *kid) {
        const char *at = strstr(tmpl, "KID");
        char *out;

        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
        CU_ASSERT_FATAL(asprintf(&out, "%.*s%s%s", (int) (at - tmpl), tmpl, kid, at + 3) > 0);
        return out;
}

static char *issue(const token_key *k, usec_t t, usec_t lifetime, const char *scope) {
        token_issue_params p = {
                .issuer = ISS, .subject = ENDPOINT, .audience = AUD, .scope = scope, .lifetime = lifetime, .now = t,
        };
        char *token = NULL;

        CU_ASSERT_EQUAL_FATAL(token_issue(k, &p, &token), 0);
        return token;
}

static token_keyset *keyset_of(const token_key *k) {
        token_keyset *s = NULL;

        CU_ASSERT_EQUAL_FATAL(token_keyset_new(&s), 0);
        CU_ASSERT_EQUAL_FATAL(token_keyset_add(s, k), 0);
        return s;
}

/* Verifies with the standard parameters at time t and the given required
 * scope; returns the error and sets *reason. */
static int verify_at(const token_keyset *s, const char *token, usec_t t, const char *scope, const char **reason) {
        _cleanup_token_claims_ token_claims *c = NULL;
        token_verify_params p = { .issuer = ISS, .audience = AUD, .scope = scope, .now = t };
        token_claims *untouched = (token_claims *) 0x1;
        int r;

        *reason = NULL;
        r = token_verify(s, token, &p, &c, reason);
        if (r < 0) {
                /* Failure leaves the output alone and always says why. */
                CU_ASSERT_EQUAL(token_verify(s, token, &p, &untouched, NULL), r);
                CU_ASSERT_PTR_EQUAL(untouched, (token_claims *) 0x1);
                CU_ASSERT_PTR_NOT_NULL(*reason);
        } else
                CU_ASSERT_PTR_NOT_NULL(c);
        return r;
}

#define ASSERT_REJECTED(expr_r, reason, want_r, want_reason)      \
        do {                                                      \
                CU_ASSERT_EQUAL((expr_r), (want_r));              \
                CU_ASSERT_PTR_NOT_NULL(reason);                   \
                if (reason)                                       \
                        CU_ASSERT_STRING_EQUAL(reason, want_reason); \
        } while (0)

static void test_keys(void) {
        _cleanup_token_key_ token_key *k = NULL, *pub = NULL, *loaded = NULL, *from_pem = NULL, *other = NULL;
        _cleanup_free_ char *jwk = NULL, *pem = NULL, *canon = NULL, *want_kid = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *p384 = NULL;
        _cleanup_sign_key_ sign_key *ed = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        token_key *untouched = (token_key *) 0x1;
        const char *p = path_in_tmp("idm.key");
        char *ec_pem = NULL;
        struct stat st;
        mode_t old;
        FILE *f;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        CU_ASSERT(token_key_has_private(k));
        CU_ASSERT_EQUAL(strlen(token_key_get_kid(k)), TOKEN_KID_THUMBPRINT_LENGTH);

        /* The kid is the RFC 7638 thumbprint, recomputed here from the
         * exported JWK. */
        CU_ASSERT_EQUAL_FATAL(token_key_to_jwk(k, &jwk), 0);
        CU_ASSERT_PTR_NULL(strstr(jwk, "\"d\""));
        j = json_loads(jwk, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "kty")), "EC");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "crv")), "P-256");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "alg")), "ES256");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "use")), "sig");
        CU_ASSERT_EQUAL(strlen(json_string_value(json_object_get(j, "x"))), 43);
        CU_ASSERT_FATAL(asprintf(&canon, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                                 json_string_value(json_object_get(j, "x")),
                                 json_string_value(json_object_get(j, "y"))) > 0);
        CU_ASSERT_EQUAL_FATAL(sha256_buffer(canon, strlen(canon), digest), 0);
        want_kid = b64(digest, sizeof(digest));
        CU_ASSERT_STRING_EQUAL(token_key_get_kid(k), want_kid);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "kid")), want_kid);

        CU_ASSERT_EQUAL_FATAL(token_key_public_copy(k, &pub), 0);
        CU_ASSERT_FALSE(token_key_has_private(pub));
        CU_ASSERT(token_key_public_equal(k, pub));
        CU_ASSERT_STRING_EQUAL(token_key_get_kid(pub), want_kid);

        /* Private key file: 0600 whatever the umask, loads back the same. */
        old = umask(0);
        CU_ASSERT_EQUAL_FATAL(token_key_save_private_pem(k, p), 0);
        umask(old);
        CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
        CU_ASSERT_EQUAL_FATAL(token_key_load_private_pem(p, &loaded), 0);
        CU_ASSERT(token_key_has_private(loaded));
        CU_ASSERT(token_key_public_equal(k, loaded));
        CU_ASSERT_STRING_EQUAL(token_key_get_kid(loaded), want_kid);

        CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(k, &pem), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
        CU_ASSERT_EQUAL_FATAL(token_key_from_public_pem(pem, SIZE_MAX, &from_pem), 0);
        CU_ASSERT_FALSE(token_key_has_private(from_pem));
        CU_ASSERT_STRING_EQUAL(token_key_get_kid(from_pem), want_kid);

        /* Public keys neither sign nor save. */
        CU_ASSERT_EQUAL(token_key_save_private_pem(pub, path_in_tmp("pub.key")), -ENOKEY);
        {
                token_issue_params ip = { .issuer = ISS, .subject = "s", .audience = AUD, .lifetime = 60 };
                char *t = (char *) 0x1;

                CU_ASSERT_EQUAL(token_issue(pub, &ip, &t), -ENOKEY);
                CU_ASSERT_EQUAL(token_assertion_new(pub, ENDPOINT, TOKEN_URL, 60 * USEC_PER_SEC, T0, &t), -ENOKEY);
                CU_ASSERT_PTR_EQUAL(t, (char *) 0x1);
        }

        /* Keys of other types and curves, and garbage. */
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&ed), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_save_private_pem(ed, path_in_tmp("ed.key")), 0);
        CU_ASSERT_EQUAL(token_key_load_private_pem(path_in_tmp("ed.key"), &untouched), -EKEYREJECTED);
        p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p384);
        f = fopen(path_in_tmp("p384.key"), "we");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(PEM_write_PrivateKey(f, p384, NULL, NULL, 0, NULL, NULL), 1);
        CU_ASSERT_EQUAL(PEM_write_PUBKEY(f, p384), 1);
        CU_ASSERT_EQUAL(fclose(f), 0);
        CU_ASSERT_EQUAL(token_key_load_private_pem(path_in_tmp("p384.key"), &untouched), -EKEYREJECTED);
        CU_ASSERT_EQUAL_FATAL(read_full_file(path_in_tmp("p384.key"), 8192, &ec_pem, NULL), 0);
        CU_ASSERT_EQUAL(token_key_from_public_pem(strstr(ec_pem, "-----BEGIN PUBLIC KEY"), SIZE_MAX, &untouched),
                        -EKEYREJECTED);
        free(ec_pem);
        CU_ASSERT_EQUAL(token_key_from_private_pem("garbage", SIZE_MAX, &untouched), -EBADMSG);
        CU_ASSERT_EQUAL(token_key_from_public_pem("garbage", SIZE_MAX, &untouched), -EBADMSG);
        CU_ASSERT_EQUAL(token_key_from_private_pem(pem, SIZE_MAX, &untouched), -EBADMSG);
        CU_ASSERT_EQUAL(token_key_load_private_pem(path_in_tmp("missing.key"), &untouched), -ENOENT);
        CU_ASSERT_PTR_EQUAL(untouched, (token_key *) 0x1);

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&other), 0);
        CU_ASSERT_FALSE(token_key_public_equal(k, other));
        CU_ASSERT_STRING_NOT_EQUAL(token_key_get_kid(k), token_key_get_kid(other));
        CU_ASSERT_PTR_NULL(token_key_free(NULL));
}

static json_t *decode_part(const char *token, int part) {
        _cleanup_free_ void *d = NULL;
        const char *s = token, *e;
        size_t n;

        for (int i = 0; i < part; i++)
                s = strchr(s, '.') + 1;
        e = strchr(s, '.');
        CU_ASSERT_EQUAL_FATAL(base64url_decode(s, e ? (size_t) (e - s) : strlen(s), &d, &n), 0);
        return json_loadb(d, n, 0, NULL);
}

static void test_issue_verify(void) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_token_keyset_ token_keyset *s = NULL;
        _cleanup_token_claims_ token_claims *c = NULL;
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;
        _cleanup_(json_decrefp) json_t *h = NULL, *p = NULL;
        token_verify_params vp = { .issuer = ISS, .audience = AUD, .scope = "msg:write registry:read", .now = T0 };
        const char *reason = NULL;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        s = keyset_of(k);
        t1 = issue(k, T0, 3600 * USEC_PER_SEC, "registry:read msg:write rd:read");
        t2 = issue(k, T0, 3600 * USEC_PER_SEC, "registry:read msg:write rd:read");

        h = decode_part(t1, 0);
        p = decode_part(t1, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(h);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(h, "alg")), "ES256");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(h, "kid")), token_key_get_kid(k));
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(p, "iat")), 1800000000);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(p, "nbf")), 1800000000);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(p, "exp")), 1800003600);
        CU_ASSERT(id_uuid_is_valid(json_string_value(json_object_get(p, "jti"))));

        CU_ASSERT_EQUAL_FATAL(token_verify(s, t1, &vp, &c, &reason), 0);
        CU_ASSERT_STRING_EQUAL(token_claims_get_issuer(c), ISS);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(c), ENDPOINT);
        CU_ASSERT_STRING_EQUAL(token_claims_get_scope(c), "registry:read msg:write rd:read");
        CU_ASSERT(token_claims_has_scope(c, "msg:write"));
        CU_ASSERT(token_claims_has_scope(c, "rd:read"));
        CU_ASSERT_FALSE(token_claims_has_scope(c, "msg"));
        CU_ASSERT_FALSE(token_claims_has_scope(c, "msg:write registry:read"));
        CU_ASSERT_FALSE(token_claims_has_scope(c, ""));
        CU_ASSERT_EQUAL(token_claims_get_expiry(c), T0 + 3600 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(token_claims_get_issued_at(c), T0);
        CU_ASSERT_STRING_EQUAL(token_claims_get_kid(c), token_key_get_kid(k));
        CU_ASSERT_STRING_EQUAL(token_claims_get_jti(c), json_string_value(json_object_get(p, "jti")));
        c = token_claims_free(c);

        /* Every token has its own jti (and ECDSA its own signature). */
        CU_ASSERT_STRING_NOT_EQUAL(t1, t2);
        CU_ASSERT_EQUAL(token_verify(s, t2, &vp, &c, &reason), 0);
        c = token_claims_free(c);

        /* No scope at all: "" and no scope granted. */
        free(t2);
        t2 = issue(k, T0, 60 * USEC_PER_SEC, NULL);
        vp.scope = NULL;
        CU_ASSERT_EQUAL_FATAL(token_verify(s, t2, &vp, &c, &reason), 0);
        CU_ASSERT_STRING_EQUAL(token_claims_get_scope(c), "");
        CU_ASSERT_FALSE(token_claims_has_scope(c, "msg:write"));

        /* Bad issue parameters. */
        {
                token_issue_params ip = { .issuer = ISS, .subject = "s", .audience = AUD, .lifetime = 60 * USEC_PER_SEC };
                char *t = (char *) 0x1;

                ip.scope = "a  b";
                CU_ASSERT_EQUAL(token_issue(k, &ip, &t), -EINVAL);
                ip.scope = "a\"b";
                CU_ASSERT_EQUAL(token_issue(k, &ip, &t), -EINVAL);
                ip.scope = " a";
                CU_ASSERT_EQUAL(token_issue(k, &ip, &t), -EINVAL);
                ip.scope = NULL;
                ip.lifetime = 0;
                CU_ASSERT_EQUAL(token_issue(k, &ip, &t), -EINVAL);
                ip.lifetime = 60;
                ip.audience = "";
                CU_ASSERT_EQUAL(token_issue(k, &ip, &t), -EINVAL);
                CU_ASSERT_EQUAL(token_issue(k, NULL, &t), -EINVAL);
                CU_ASSERT_PTR_EQUAL(t, (char *) 0x1);
        }
}

/* Checks a token with implementations that are not ours: the openssl
 * command line (after converting R||S to DER), and libjwt's decoder. And
 * the other way round: a signature made by the openssl command line
 * verifies with token_verify(). */
static void test_interop(void) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_token_keyset_ token_keyset *s = NULL;
        _cleanup_free_ char *t = NULL, *pem = NULL, *sig_b64 = NULL, *cli_token = NULL, *der = NULL, *h = NULL,
                            *hp = NULL;
        _cleanup_free_ void *raw = NULL;
        _cleanup_(jwt_freep) jwt_t *decoded = NULL;
        const char *reason;
        const char *dot2;
        size_t n, der_len;
        char cmd[1024];
        uint8_t rs[64];

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        s = keyset_of(k);
        t = issue(k, T0, 600 * USEC_PER_SEC, "msg:write");
        CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(k, &pem), 0);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(path_in_tmp("pub.pem"), pem, strlen(pem), 0644), 0);

        /* libjwt: the signature format and the rest of the JWS agree. */
        CU_ASSERT_EQUAL(jwt_decode(&decoded, t, (const unsigned char *) pem, (int) strlen(pem)), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(decoded);
        CU_ASSERT_STRING_EQUAL(jwt_get_grant(decoded, "sub"), ENDPOINT);

        /* openssl dgst: JWS signing input and the DER form of R||S. */
        dot2 = strrchr(t, '.');
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(path_in_tmp("input"), t, (size_t) (dot2 - t), 0644), 0);
        CU_ASSERT_EQUAL_FATAL(base64url_decode(dot2 + 1, SIZE_MAX, &raw, &n), 0);
        CU_ASSERT_EQUAL_FATAL(n, 64);
        {
                ECDSA_SIG *es = ECDSA_SIG_new();
                unsigned char *d = NULL;
                int l;

                CU_ASSERT_EQUAL_FATAL(ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn((uint8_t *) raw + 32, 32, NULL)),
                                      1);
                l = i2d_ECDSA_SIG(es, &d);
                CU_ASSERT_FATAL(l > 0);
                CU_ASSERT_EQUAL_FATAL(write_file_atomic(path_in_tmp("sig.der"), d, (size_t) l, 0644), 0);
                OPENSSL_free(d);
                ECDSA_SIG_free(es);
        }
        snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -verify '%s' -signature '%s' '%s' >/dev/null 2>&1",
                 path_in_tmp("pub.pem"), path_in_tmp("sig.der"), path_in_tmp("input"));
        CU_ASSERT_EQUAL(system(cmd), 0);
        /* The check is real: another input fails it. */
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(path_in_tmp("input"), t, (size_t) (dot2 - t) - 1, 0644), 0);
        CU_ASSERT_NOT_EQUAL(system(cmd), 0);

        /* The other way: openssl signs a JWS signing input we built. */
        CU_ASSERT_EQUAL_FATAL(token_key_save_private_pem(k, path_in_tmp("priv.pem")), 0);
        h = header_with_kid(k);
        {
                _cleanup_free_ char *hb = b64(h, strlen(h)), *pb = NULL;
                const char *payload = "{\"iss\":\"" ISS "\",\"sub\":\"cli\",\"aud\":\"" AUD "\",\"exp\":1800000600}";

                pb = b64(payload, strlen(payload));
                CU_ASSERT_FATAL(asprintf(&hp, "%s.%s", hb, pb) > 0);
        }
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(path_in_tmp("input2"), hp, strlen(hp), 0644), 0);
        snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -sign '%s' -out '%s' '%s' >/dev/null 2>&1",
                 path_in_tmp("priv.pem"), path_in_tmp("sig2.der"), path_in_tmp("input2"));
        CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
        CU_ASSERT_EQUAL_FATAL(read_full_file(path_in_tmp("sig2.der"), 1024, &der, &der_len), 0);
        der_to_raw((unsigned char *) der, der_len, rs);
        sig_b64 = b64(rs, sizeof(rs));
        CU_ASSERT_FATAL(asprintf(&cli_token, "%s.%s", hp, sig_b64) > 0);
        CU_ASSERT_EQUAL(verify_at(s, cli_token, T0, NULL, &reason), 0);
        /* DER where R||S belongs is refused. */
        free(cli_token);
        free(sig_b64);
        sig_b64 = b64(der, der_len);
        CU_ASSERT_FATAL(asprintf(&cli_token, "%s.%s", hp, sig_b64) > 0);
        ASSERT_REJECTED(verify_at(s, cli_token, T0, NULL, &reason), reason, -EBADMSG, "bad signature");
}

/* Replaces the part-th segment (0 header, 1 payload, 2 signature). */
static char *splice(const char *token, int part, const char *replacement) {
        const char *d1 = strchr(token, '.'), *d2 = strrchr(token, '.');
        char *out;

        switch (part) {
        case 0:
                CU_ASSERT_FATAL(asprintf(&out, "%s%s", replacement, d1) > 0);
                break;
        case 1:
                CU_ASSERT_FATAL(asprintf(&out, "%.*s.%s%s", (int) (d1 - token), token, replacement, d2) > 0);
                break;
        default:
                CU_ASSERT_FATAL(asprintf(&out, "%.*s.%s", (int) (d2 - token), token, replacement) > 0);
        }
        return out;
}

static void test_tampering(void) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_token_keyset_ token_keyset *s = NULL;
        _cleanup_free_ char *t = NULL, *x = NULL, *part = NULL, *big = NULL;
        _cleanup_(json_decrefp) json_t *p = NULL;
        const char *reason;
        char *json;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        s = keyset_of(k);
        t = issue(k, T0, 600 * USEC_PER_SEC, "msg:read");
        CU_ASSERT_EQUAL(verify_at(s, t, T0, "msg:read", &reason), 0);

        /* Payload: a wider scope, same signature. */
        p = decode_part(t, 1);
        json_object_set_new(p, "scope", json_string("msg:read admin"));
        json = json_dumps(p, JSON_COMPACT);
        part = b64(json, strlen(json));
        free(json);
        x = splice(t, 1, part);
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EBADMSG, "bad signature");
        x = mfree(x);
        part = mfree(part);

        /* Header: the same fields, spelled differently. */
        {
                _cleanup_free_ char *h = NULL;

                CU_ASSERT_FATAL(asprintf(&h, "{\"kid\":\"%s\",\"alg\":\"ES256\"}", token_key_get_kid(k)) > 0);
                part = b64(h, strlen(h));
        }
        x = splice(t, 0, part);
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EBADMSG, "bad signature");
        x = mfree(x);
        part = mfree(part);

        /* Signature: one bit, truncated, empty, not base64url, DER-sized. */
        x = strdup(t);
        x[strlen(x) - 5] = x[strlen(x) - 5] == 'A' ? 'B' : 'A';
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EBADMSG, "bad signature");
        /* 86 characters: 85 cannot be base64url, 84 is 63 clean bytes. */
        CU_ASSERT_EQUAL_FATAL(strlen(strrchr(x, '.') + 1), 86);
        x[strlen(x) - 1] = '\0';
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EINVAL, "bad base64url in signature");
        x[strlen(x) - 1] = '\0';
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EBADMSG, "bad signature");
        x = mfree(x);
        x = splice(t, 2, "");
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EBADMSG, "bad signature");
        x = mfree(x);
        x = splice(t, 2, "AAAA+AAA");
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EINVAL, "bad base64url in signature");
        x = mfree(x);
        {
                uint8_t zero[64] = {};

                part = b64(zero, sizeof(zero));
                x = splice(t, 2, part);
                ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EBADMSG, "bad signature");
                x = mfree(x);
                part = mfree(part);
        }

        /* Structure. */
        ASSERT_REJECTED(verify_at(s, "", T0, NULL, &reason), reason, -EINVAL, "malformed token");
        ASSERT_REJECTED(verify_at(s, "abc", T0, NULL, &reason), reason, -EINVAL, "malformed token");
        ASSERT_REJECTED(verify_at(s, "a.b", T0, NULL, &reason), reason, -EINVAL, "malformed token");
        ASSERT_REJECTED(verify_at(s, "a.b.c.d", T0, NULL, &reason), reason, -EINVAL, "malformed token");
        ASSERT_REJECTED(verify_at(s, "..sig", T0, NULL, &reason), reason, -EINVAL, "malformed token");
        CU_ASSERT_FATAL(asprintf(&x, "%s.extra", t) > 0);
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EINVAL, "malformed token");
        x = mfree(x);
        x = splice(t, 0, "eyJhbGciOiJFUzI1NiJ9=");
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EINVAL, "bad base64url in header");
        x = mfree(x);
        x = splice(t, 0, "bm90IGpzb24");
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EINVAL, "header is not a JSON object");
        x = mfree(x);
        x = splice(t, 0, "WzFd"); /* [1] */
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EINVAL, "header is not a JSON object");
        x = mfree(x);
        x = splice(t, 1, "e30+");
        ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, -EINVAL, "bad base64url in payload");
        x = mfree(x);

        big = malloc(TOKEN_MAX_SIZE + 2);
        memset(big, 'A', TOKEN_MAX_SIZE + 1);
        big[10] = big[20] = '.';
        big[TOKEN_MAX_SIZE + 1] = '\0';
        ASSERT_REJECTED(verify_at(s, big, T0, NULL, &reason), reason, -EINVAL, "token too large");

        {
                token_verify_params vp = { .issuer = ISS, .audience = AUD };
                token_claims *c = NULL;

                reason = NULL;
                CU_ASSERT_EQUAL(token_verify(s, NULL, &vp, &c, &reason), -EINVAL);
                CU_ASSERT_EQUAL(token_verify(NULL, t, &vp, &c, &reason), -EINVAL);
                vp.audience = NULL;
                CU_ASSERT_EQUAL(token_verify(s, t, &vp, &c, &reason), -EINVAL);
                CU_ASSERT_STRING_EQUAL(reason, "missing argument");
        }
}

static void test_alg_attacks(void) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_token_keyset_ token_keyset *s = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pk = NULL;
        _cleanup_free_ char *pem = NULL, *t = NULL, *h = NULL, *hb = NULL, *x = NULL, *hs = NULL;
        _cleanup_(jwt_freep) jwt_t *j = NULL, *d = NULL;
        const char *reason, *payload = "{\"iss\":\"" ISS "\",\"sub\":\"evil\",\"aud\":\"" AUD
                                       "\",\"exp\":1800000600,\"scope\":\"admin\"}";
        static const struct {
                const char *alg, *reason;
                int r;
        } algs[] = {
                { "none", "alg none rejected", -EPROTONOSUPPORT },
                { "HS256", "HMAC alg rejected", -EPROTONOSUPPORT },
                { "HS512", "HMAC alg rejected", -EPROTONOSUPPORT },
                { "RS256", "alg not supported", -EPROTONOSUPPORT },
                { "ES384", "alg not supported", -EPROTONOSUPPORT },
                { "es256", "alg not supported", -EPROTONOSUPPORT },
                { "None", "alg not supported", -EPROTONOSUPPORT },
                { "", "alg not supported", -EPROTONOSUPPORT },
        };

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        s = keyset_of(k);
        pk = openssl_key(k);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
        h = header_with_kid(k);
        t = forge(pk, h, payload);
        /* The forging itself is sound: with alg ES256 it verifies. */
        CU_ASSERT_EQUAL(verify_at(s, t, T0, "admin", &reason), 0);

        /* Other algs in the header of a token whose signature is the
         * valid ES256 one, or empty as "none" has it. */
        for (size_t i = 0; i < ELEMENTSOF(algs); i++) {
                h = mfree(h);
                hb = mfree(hb);
                CU_ASSERT_FATAL(asprintf(&h, "{\"alg\":\"%s\",\"kid\":\"%s\"}", algs[i].alg, token_key_get_kid(k)) >
                                0);
                hb = b64(h, strlen(h));
                x = splice(t, 0, hb);
                ASSERT_REJECTED(verify_at(s, x, T0, NULL, &reason), reason, algs[i].r, algs[i].reason);
                x = mfree(x);
                CU_ASSERT_FATAL(asprintf(&hs, "%s.%.*s.", hb, (int) (strrchr(t, '.') - strchr(t, '.') - 1),
                                         strchr(t, '.') + 1) > 0);
                ASSERT_REJECTED(verify_at(s, hs, T0, NULL, &reason), reason, algs[i].r, algs[i].reason);
                hs = mfree(hs);
        }

        /* The classic confusion: HS256 keyed with the public key's PEM. */
        CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(k, &pem), 0);
        CU_ASSERT_EQUAL_FATAL(jwt_new(&j), 0);
        CU_ASSERT_EQUAL_FATAL(jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *) pem, (int) strlen(pem)), 0);
        CU_ASSERT_EQUAL_FATAL(jwt_add_header(j, "kid", token_key_get_kid(k)), 0);
        CU_ASSERT_EQUAL_FATAL(jwt_add_grants_json(j, payload), 0);
        hs = jwt_encode_str(j);
        CU_ASSERT_PTR_NOT_NULL_FATAL(hs);
        /* libjwt 1.10's own decoder takes the alg from the token and
         * accepts this (why it is not our verifier)... */
        CU_ASSERT_EQUAL(jwt_decode(&d, hs, (const unsigned char *) pem, (int) strlen(pem)), 0);
        /* ...we do not. */
        ASSERT_REJECTED(verify_at(s, hs, T0, NULL, &reason), reason, -EPROTONOSUPPORT, "HMAC alg rejected");

        /* Missing alg, alg of the wrong type, crit, typ. */
        x = mfree(x);
        {
                static const struct {
                        const char *fmt, *reason;
                        int r;
                } hdrs[] = {
                        { "{\"kid\":\"KID\"}", "missing alg", -EINVAL },
                        { "{\"alg\":256,\"kid\":\"KID\"}", "missing alg", -EINVAL },
                        { "{\"alg\":\"ES256\",\"kid\":\"KID\",\"crit\":[\"exp\"],\"exp\":1}", "crit header not supported",
                          -EPROTONOSUPPORT },
                        { "{\"alg\":\"ES256\",\"kid\":\"KID\",\"typ\":\"at+jwt\"}", "unexpected typ", -EINVAL },
                        { "{\"alg\":\"ES256\",\"kid\":\"KID\",\"alg\":\"none\"}", "header is not a JSON object", -EINVAL },
                };

                for (size_t i = 0; i < ELEMENTSOF(hdrs); i++) {
                        _cleanup_free_ char *hh = NULL, *tt = NULL;

                        hh = replace_kid(hdrs[i].fmt, token_key_get_kid(k));
                        /* Properly signed, so only the header can be the reason. */
                        tt = forge(pk, hh, payload);
                        ASSERT_REJECTED(verify_at(s, tt, T0, NULL, &reason), reason, hdrs[i].r, hdrs[i].reason);
                }
        }
}

static void test_kid(void) {
        _cleanup_token_key_ token_key *k = NULL, *other = NULL;
        _cleanup_token_keyset_ token_keyset *s = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pk_other = NULL;
        _cleanup_free_ char *t = NULL, *h = NULL;
        const char *reason, *payload = "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600}";

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_generate(&other), 0);
        s = keyset_of(k);
        pk_other = openssl_key(other);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pk_other);

        t = issue(other, T0, 60 * USEC_PER_SEC, NULL);
        ASSERT_REJECTED(verify_at(s, t, T0, NULL, &reason), reason, -ENOKEY, "unknown kid");
        t = mfree(t);
        t = forge(pk_other, "{\"alg\":\"ES256\"}", payload);
        ASSERT_REJECTED(verify_at(s, t, T0, NULL, &reason), reason, -ENOKEY, "missing kid");
        t = mfree(t);
        t = forge(pk_other, "{\"alg\":\"ES256\",\"kid\":7}", payload);
        ASSERT_REJECTED(verify_at(s, t, T0, NULL, &reason), reason, -EINVAL, "invalid kid");
        t = mfree(t);
        /* The right kid does not make another key's signature good. */
        h = header_with_kid(k);
        t = forge(pk_other, h, payload);
        ASSERT_REJECTED(verify_at(s, t, T0, NULL, &reason), reason, -EBADMSG, "bad signature");

        /* With both keys in the set, each token finds its own. */
        CU_ASSERT_EQUAL_FATAL(token_keyset_add(s, other), 0);
        CU_ASSERT_EQUAL(token_keyset_add(s, other), -EEXIST);
        CU_ASSERT_EQUAL(token_keyset_size(s), 2);
        t = mfree(t);
        t = issue(other, T0, 60 * USEC_PER_SEC, NULL);
        CU_ASSERT_EQUAL(verify_at(s, t, T0, NULL, &reason), 0);
        t = mfree(t);
        t = issue(k, T0, 60 * USEC_PER_SEC, NULL);
        CU_ASSERT_EQUAL(verify_at(s, t, T0, NULL, &reason), 0);
}

static void test_times(void) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_token_keyset_ token_keyset *s = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pk = NULL;
        _cleanup_free_ char *t = NULL, *h = NULL;
        const char *reason;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        s = keyset_of(k);
        t = issue(k, T0, 60 * USEC_PER_SEC, NULL);

        CU_ASSERT_EQUAL(verify_at(s, t, T0, NULL, &reason), 0);
        CU_ASSERT_EQUAL(verify_at(s, t, T0 + 60 * USEC_PER_SEC, NULL, &reason), 0);
        /* Within the leeway after exp, and just beyond it. */
        CU_ASSERT_EQUAL(verify_at(s, t, T0 + 60 * USEC_PER_SEC + TOKEN_LEEWAY_USEC, NULL, &reason), 0);
        ASSERT_REJECTED(verify_at(s, t, T0 + 60 * USEC_PER_SEC + TOKEN_LEEWAY_USEC + 1, NULL, &reason), reason,
                        -ESTALE, "token expired");
        ASSERT_REJECTED(verify_at(s, t, T0 + USEC_PER_DAY, NULL, &reason), reason, -ESTALE, "token expired");
        /* Before nbf: within the leeway, and beyond it. */
        CU_ASSERT_EQUAL(verify_at(s, t, T0 - TOKEN_LEEWAY_USEC, NULL, &reason), 0);
        ASSERT_REJECTED(verify_at(s, t, T0 - TOKEN_LEEWAY_USEC - 1, NULL, &reason), reason, -EAGAIN,
                        "token not yet valid");

        /* iat in the future without nbf; bad date types. */
        pk = openssl_key(k);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
        h = header_with_kid(k);
        {
                static const struct {
                        const char *payload, *reason;
                        int r;
                } cases[] = {
                        { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"iat\":1800000100,\"exp\":1800000600}",
                          "token issued in the future", -EAGAIN },
                        { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\"}", "missing exp", -EINVAL },
                        { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":\"1800000600\"}", "invalid exp",
                          -EINVAL },
                        { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600.5}", "invalid exp",
                          -EINVAL },
                        { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":-1}", "invalid exp", -EINVAL },
                        { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":99999999999999}", "invalid exp",
                          -EINVAL },
                        { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600,\"nbf\":null}",
                          "invalid nbf", -EINVAL },
                        { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600,\"iat\":true}",
                          "invalid iat", -EINVAL },
                };

                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        _cleanup_free_ char *tt = forge(pk, h, cases[i].payload);

                        ASSERT_REJECTED(verify_at(s, tt, T0, NULL, &reason), reason, cases[i].r, cases[i].reason);
                }
        }
}

static void test_claims(void) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_token_keyset_ token_keyset *s = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pk = NULL;
        _cleanup_free_ char *t = NULL, *h = NULL;
        const char *reason;
        static const struct {
                const char *payload, *scope, *reason;
                int r;
        } cases[] = {
                /* iss and aud. */
                { "{\"iss\":\"https://evil.example\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600}", NULL,
                  "issuer mismatch", -EACCES },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"https://other.example\",\"exp\":1800000600}", NULL,
                  "audience mismatch", -EACCES },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":[\"a\",\"b\"],\"exp\":1800000600}", NULL,
                  "audience mismatch", -EACCES },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":[\"a\",\"" AUD "\"],\"exp\":1800000600}", NULL, NULL, 0 },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":[],\"exp\":1800000600}", NULL, "invalid aud", -EINVAL },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":[\"" AUD "\",1],\"exp\":1800000600}", NULL, "invalid aud",
                  -EINVAL },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":42,\"exp\":1800000600}", NULL, "invalid aud", -EINVAL },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"exp\":1800000600}", NULL, "missing aud", -EINVAL },
                { "{\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600}", NULL, "missing iss", -EINVAL },
                { "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1800000600}", NULL, "missing sub", -EINVAL },
                { "{\"iss\":\"" ISS "\",\"sub\":\"\",\"aud\":\"" AUD "\",\"exp\":1800000600}", NULL, "missing sub",
                  -EINVAL },
                /* Scopes: whole items only. */
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600,\"scope\":\"a b\"}",
                  "b a", NULL, 0 },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600,\"scope\":\"a b\"}", "a c",
                  "missing scope", -EPERM },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600,\"scope\":\"msg:write\"}",
                  "msg", "missing scope", -EPERM },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600,\"scope\":\"ab\"}", "a",
                  "missing scope", -EPERM },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600}", "a", "missing scope",
                  -EPERM },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600,\"scope\":[\"a\"]}", NULL,
                  "invalid scope", -EINVAL },
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" AUD "\",\"exp\":1800000600,\"jti\":\"\"}", NULL,
                  "invalid jti", -EINVAL },
                /* Duplicate claims: two parsers could read two tokens. */
                { "{\"iss\":\"" ISS "\",\"sub\":\"x\",\"sub\":\"admin\",\"aud\":\"" AUD "\",\"exp\":1800000600}", NULL,
                  "payload is not a JSON object", -EINVAL },
                { "[1,2]", NULL, "payload is not a JSON object", -EINVAL },
                { "{\"iss\":\"" ISS "\"} trailing", NULL, "payload is not a JSON object", -EINVAL },
        };

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        s = keyset_of(k);
        pk = openssl_key(k);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
        h = header_with_kid(k);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                t = mfree(t);
                t = forge(pk, h, cases[i].payload);
                if (cases[i].r == 0) {
                        CU_ASSERT_EQUAL(verify_at(s, t, T0, cases[i].scope, &reason), 0);
                } else {
                        ASSERT_REJECTED(verify_at(s, t, T0, cases[i].scope, &reason), reason, cases[i].r,
                                        cases[i].reason);
                }
        }

        /* Issued tokens: wrong expectations. */
        t = mfree(t);
        t = issue(k, T0, 60 * USEC_PER_SEC, "msg:read");
        {
                token_verify_params vp = { .issuer = ISS "/", .audience = AUD, .now = T0 };
                token_claims *c = NULL;

                reason = NULL;
                CU_ASSERT_EQUAL(token_verify(s, t, &vp, &c, &reason), -EACCES);
                CU_ASSERT_STRING_EQUAL(reason, "issuer mismatch");
                vp.issuer = ISS;
                vp.audience = "https://registry.example.org.evil";
                CU_ASSERT_EQUAL(token_verify(s, t, &vp, &c, &reason), -EACCES);
                CU_ASSERT_STRING_EQUAL(reason, "audience mismatch");
                vp.audience = AUD;
                vp.scope = "msg:write";
                CU_ASSERT_EQUAL(token_verify(s, t, &vp, &c, &reason), -EPERM);
                CU_ASSERT_STRING_EQUAL(reason, "missing scope");
                CU_ASSERT_PTR_NULL(c);
        }
}

static void test_jwks(void) {
        _cleanup_token_key_ token_key *a = NULL, *b = NULL, *one = NULL;
        _cleanup_token_keyset_ token_keyset *s = NULL, *imported = NULL, *empty = NULL;
        _cleanup_free_ char *jwks = NULL, *again = NULL, *t = NULL, *jwk = NULL;
        const char *reason = NULL;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&a), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_generate(&b), 0);
        CU_ASSERT_EQUAL_FATAL(token_keyset_new(&s), 0);
        CU_ASSERT_EQUAL(token_keyset_size(s), 0);
        CU_ASSERT_EQUAL_FATAL(token_keyset_add(s, a), 0);
        CU_ASSERT_EQUAL_FATAL(token_keyset_add(s, b), 0);
        /* The set holds public copies only. */
        CU_ASSERT_FALSE(token_key_has_private(token_keyset_find(s, token_key_get_kid(a))));
        CU_ASSERT_PTR_NULL(token_keyset_find(s, "nope"));
        CU_ASSERT_PTR_NULL(token_keyset_find(s, NULL));

        CU_ASSERT_EQUAL_FATAL(token_keyset_to_jwks(s, &jwks), 0);
        CU_ASSERT_PTR_NULL(strstr(jwks, "\"d\""));
        CU_ASSERT_EQUAL_FATAL(token_keyset_from_jwks(jwks, SIZE_MAX, &imported, &reason), 0);
        CU_ASSERT_EQUAL(token_keyset_size(imported), 2);
        CU_ASSERT(token_key_public_equal(token_keyset_find(imported, token_key_get_kid(a)), a));
        CU_ASSERT(token_key_public_equal(token_keyset_find(imported, token_key_get_kid(b)), b));
        CU_ASSERT_EQUAL_FATAL(token_keyset_to_jwks(imported, &again), 0);
        CU_ASSERT_STRING_EQUAL(jwks, again);

        /* Tokens verify against the imported set. */
        t = issue(b, T0, 60 * USEC_PER_SEC, NULL);
        CU_ASSERT_EQUAL(verify_at(imported, t, T0, NULL, &reason), 0);

        /* One JWK, with or without kid (then the thumbprint), another kid
         * kept as given. */
        CU_ASSERT_EQUAL_FATAL(token_key_to_jwk(a, &jwk), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_from_jwk(jwk, SIZE_MAX, &one, &reason), 0);
        CU_ASSERT(token_key_public_equal(one, a));
        CU_ASSERT_STRING_EQUAL(token_key_get_kid(one), token_key_get_kid(a));
        one = token_key_free(one);
        {
                _cleanup_(json_decrefp) json_t *j = json_loads(jwk, 0, NULL);
                _cleanup_free_ char *nokid = NULL, *named = NULL;

                json_object_del(j, "kid");
                json_object_del(j, "alg");
                json_object_del(j, "use");
                nokid = json_dumps(j, JSON_COMPACT);
                CU_ASSERT_EQUAL_FATAL(token_key_from_jwk(nokid, SIZE_MAX, &one, &reason), 0);
                CU_ASSERT_STRING_EQUAL(token_key_get_kid(one), token_key_get_kid(a));
                one = token_key_free(one);
                json_object_set_new(j, "kid", json_string("2026-11"));
                named = json_dumps(j, JSON_COMPACT);
                CU_ASSERT_EQUAL_FATAL(token_key_from_jwk(named, SIZE_MAX, &one, &reason), 0);
                CU_ASSERT_STRING_EQUAL(token_key_get_kid(one), "2026-11");
        }

        CU_ASSERT_EQUAL_FATAL(token_keyset_from_jwks("{\"keys\":[]}", SIZE_MAX, &empty, &reason), 0);
        CU_ASSERT_EQUAL(token_keyset_size(empty), 0);
        CU_ASSERT_EQUAL(verify_at(empty, t, T0, NULL, &reason), -ENOKEY);
}

static void test_jwks_malformed(void) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_free_ char *jwk = NULL, *x = NULL, *y = NULL, *bad_y = NULL, *many = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        token_keyset *untouched = (token_keyset *) 0x1;
        const char *reason;
        char buf[1024];
        _cleanup_free_ void *yraw = NULL;
        size_t n;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_to_jwk(k, &jwk), 0);
        j = json_loads(jwk, 0, NULL);
        x = strdup(json_string_value(json_object_get(j, "x")));
        y = strdup(json_string_value(json_object_get(j, "y")));
        /* The same x with another y: almost surely not on the curve. */
        CU_ASSERT_EQUAL_FATAL(base64url_decode(y, SIZE_MAX, &yraw, &n), 0);
        ((uint8_t *) yraw)[31] ^= 1;
        bad_y = b64(yraw, n);

#define EC(extra) "{\"kty\":\"EC\",\"crv\":\"P-256\"" extra "}"
        const struct {
                const char *fmt, *reason;
        } cases[] = {
                { "not json", "JWKS is not valid JSON" },
                { "[]", "JWKS is not a JSON object" },
                { "{}", "missing keys array" },
                { "{\"keys\":{}}", "missing keys array" },
                { "{\"keys\":[1]}", "JWK is not a JSON object" },
                { "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "unsupported kty" },
                { "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}]}", "unsupported kty" },
                { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"%s\"}]}", "unsupported kty" },
                { "{\"keys\":[{\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", "missing kty" },
                { "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}]}", "unsupported crv" },
                { "{\"keys\":[{\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}]}", "missing crv" },
                { "{\"keys\":[" EC(",\"y\":\"%s\"") "]}", "missing x" },
                { "{\"keys\":[" EC(",\"x\":\"%s\"") "]}", "missing y" },
                { "{\"keys\":[" EC(",\"x\":7,\"y\":\"%s\"") "]}", "x is not a string" },
                { "{\"keys\":[" EC(",\"x\":\"%s=\",\"y\":\"%s\"") "]}", "bad base64url in x" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%s+\"") "]}", "bad base64url in y" },
                { "{\"keys\":[" EC(",\"x\":\"%.40s\",\"y\":\"%s\"") "]}", "x has the wrong length" },
                { "{\"keys\":[" EC(",\"x\":\"AAAA%s\",\"y\":\"%s\"") "]}", "x has the wrong length" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%.40s\"") "]}", "y has the wrong length" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"AAAA\"") "]}", "private key in JWK" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%s\",\"alg\":\"HS256\"") "]}", "unsupported alg" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%s\",\"use\":\"enc\"") "]}", "unsupported use" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%s\",\"kid\":1") "]}", "invalid kid" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"\"") "]}", "invalid kid" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%s\"") "," EC(",\"x\":\"%s\",\"y\":\"%s\"") "]}",
                  "duplicate kid" },
                { "{\"keys\":[" EC(",\"x\":\"%s\",\"y\":\"%s\",\"x\":\"%s\"") "]}", "JWKS is not valid JSON" },
        };
#undef EC

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                /* Every %s gets a real coordinate, x first then y. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
                const char *first = strstr(cases[i].fmt, "\"y\":\"%s") && !strstr(cases[i].fmt, "\"x\":") ? y : x;

                snprintf(buf, sizeof(buf), cases[i].fmt, first, y, x, y);
#pragma GCC diagnostic pop
                reason = NULL;
                CU_ASSERT_EQUAL(token_keyset_from_jwks(buf, SIZE_MAX, &untouched, &reason), -EINVAL);
                CU_ASSERT_PTR_NOT_NULL(reason);
                if (reason && !streq(reason, cases[i].reason))
                        fprintf(stderr, "case %zu: %s: got \"%s\", want \"%s\"\n", i, buf, reason, cases[i].reason);
                if (reason)
                        CU_ASSERT_STRING_EQUAL(reason, cases[i].reason);
        }

        /* Off the curve. */
        snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", x,
                 bad_y);
        CU_ASSERT_EQUAL(token_keyset_from_jwks(buf, SIZE_MAX, &untouched, &reason), -EINVAL);
        CU_ASSERT_STRING_EQUAL(reason, "point not on the curve");
        /* x = y = 0: not a point either (and not the point at infinity). */
        snprintf(buf, sizeof(buf), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        CU_ASSERT_EQUAL(token_key_from_jwk(buf, SIZE_MAX, (token_key **) &untouched, &reason), -EINVAL);
        CU_ASSERT_STRING_EQUAL(reason, "point not on the curve");

        /* Too many keys, too large. */
        {
                size_t len = 0;

                many = malloc(64 * 1024);
                len += (size_t) sprintf(many, "{\"keys\":[");
                for (int i = 0; i <= TOKEN_JWKS_MAX_KEYS; i++)
                        len += (size_t) sprintf(many + len, "%s{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"k%d\"}",
                                                i ? "," : "", x, y, i);
                sprintf(many + len, "]}");
                CU_ASSERT_EQUAL(token_keyset_from_jwks(many, SIZE_MAX, &untouched, &reason), -EINVAL);
                CU_ASSERT_STRING_EQUAL(reason, "too many keys");
        }
        {
                _cleanup_free_ char *huge = malloc(TOKEN_JWKS_MAX_SIZE + 2);

                memset(huge, ' ', TOKEN_JWKS_MAX_SIZE + 1);
                huge[TOKEN_JWKS_MAX_SIZE + 1] = '\0';
                CU_ASSERT_EQUAL(token_keyset_from_jwks(huge, SIZE_MAX, &untouched, &reason), -EINVAL);
                CU_ASSERT_STRING_EQUAL(reason, "JWKS too large");
        }
        CU_ASSERT_PTR_EQUAL(untouched, (token_keyset *) 0x1);
}

static void test_assertion(void) {
        _cleanup_token_key_ token_key *dev = NULL, *dev_pub = NULL, *dev_pem = NULL, *other = NULL;
        _cleanup_token_replay_cache_ token_replay_cache *cache = NULL;
        _cleanup_token_claims_ token_claims *c = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pk = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *jwk = NULL, *pem = NULL, *iss = NULL, *h = NULL;
        const char *reason = NULL;
        char *untouched = (char *) 0x1;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&dev), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_generate(&other), 0);
        CU_ASSERT_EQUAL_FATAL(token_replay_cache_new(64, &cache), 0);
        /* The IdM knows the device's public key from registration, as a
         * JWK or as PEM. */
        CU_ASSERT_EQUAL_FATAL(token_key_to_jwk(dev, &jwk), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_from_jwk(jwk, SIZE_MAX, &dev_pub, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(dev, &pem), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_from_public_pem(pem, SIZE_MAX, &dev_pem), 0);

        CU_ASSERT_EQUAL_FATAL(token_assertion_new(dev, ENDPOINT, TOKEN_URL, 120 * USEC_PER_SEC, T0, &a), 0);
        CU_ASSERT_EQUAL_FATAL(token_assertion_peek_issuer(a, &iss), 0);
        CU_ASSERT_STRING_EQUAL(iss, ENDPOINT);

        /* Wrong expectations do not consume the jti. */
        CU_ASSERT_EQUAL(token_assertion_verify(dev_pub, a, "urn:dev:ep:other", TOKEN_URL, cache, T0, &c, &reason),
                        -EACCES);
        CU_ASSERT_STRING_EQUAL(reason, "issuer mismatch");
        CU_ASSERT_EQUAL(token_assertion_verify(dev_pub, a, ENDPOINT, "https://idm.example.org/other", cache, T0, &c,
                                               &reason),
                        -EACCES);
        CU_ASSERT_STRING_EQUAL(reason, "audience mismatch");
        CU_ASSERT_EQUAL(token_assertion_verify(other, a, ENDPOINT, TOKEN_URL, cache, T0, &c, &reason), -ENOKEY);
        CU_ASSERT_STRING_EQUAL(reason, "unknown kid");
        CU_ASSERT_EQUAL(token_assertion_verify(dev_pub, a, ENDPOINT, TOKEN_URL, cache, T0 + 10 * USEC_PER_MINUTE, &c,
                                               &reason),
                        -ESTALE);
        CU_ASSERT_STRING_EQUAL(reason, "token expired");
        CU_ASSERT_EQUAL(token_replay_cache_size(cache), 0);
        CU_ASSERT_PTR_NULL(c);

        /* Good once, then a replay, with either form of the key. */
        CU_ASSERT_EQUAL_FATAL(token_assertion_verify(dev_pub, a, ENDPOINT, TOKEN_URL, cache, T0, &c, &reason), 0);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(c), ENDPOINT);
        CU_ASSERT_EQUAL(token_claims_get_expiry(c), T0 + 120 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(token_replay_cache_size(cache), 1);
        c = token_claims_free(c);
        CU_ASSERT_EQUAL(token_assertion_verify(dev_pem, a, ENDPOINT, TOKEN_URL, cache, T0 + 60 * USEC_PER_SEC, &c,
                                               &reason),
                        -EALREADY);
        CU_ASSERT_STRING_EQUAL(reason, "assertion replayed");
        CU_ASSERT_PTR_NULL(c);

        /* A fresh assertion (new jti) is fine. */
        CU_ASSERT_EQUAL_FATAL(token_assertion_new(dev, ENDPOINT, TOKEN_URL, 120 * USEC_PER_SEC, T0, &b), 0);
        CU_ASSERT_EQUAL(token_assertion_verify(dev_pem, b, ENDPOINT, TOKEN_URL, cache, T0, &c, &reason), 0);
        c = token_claims_free(c);
        CU_ASSERT_EQUAL(token_replay_cache_size(cache), 2);

        /* Lifetimes: the device refuses to make long ones, the IdM refuses
         * forged ones. */
        CU_ASSERT_EQUAL(token_assertion_new(dev, ENDPOINT, TOKEN_URL, 10 * USEC_PER_MINUTE, T0, &untouched), -ERANGE);
        CU_ASSERT_EQUAL(token_assertion_new(dev, ENDPOINT, TOKEN_URL, 0, T0, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(token_assertion_new(dev, "", TOKEN_URL, 60, T0, &untouched), -EINVAL);
        CU_ASSERT_PTR_EQUAL(untouched, (char *) 0x1);

        pk = openssl_key(dev);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
        h = header_with_kid(dev);
        {
                static const struct {
                        const char *payload, *reason;
                        int r;
                } cases[] = {
                        { "{\"iss\":\"" ENDPOINT "\",\"sub\":\"" ENDPOINT "\",\"aud\":\"" TOKEN_URL
                          "\",\"iat\":1800000000,\"exp\":1800003600,\"jti\":\"j1\"}",
                          "assertion lifetime too long", -ERANGE },
                        { "{\"iss\":\"" ENDPOINT "\",\"sub\":\"" ENDPOINT "\",\"aud\":\"" TOKEN_URL
                          "\",\"exp\":1800003600,\"jti\":\"j2\"}",
                          "assertion lifetime too long", -ERANGE },
                        { "{\"iss\":\"" ENDPOINT "\",\"sub\":\"" ENDPOINT "\",\"aud\":\"" TOKEN_URL
                          "\",\"iat\":1799999900,\"exp\":1800000250,\"jti\":\"j3\"}",
                          "assertion lifetime too long", -ERANGE },
                        { "{\"iss\":\"" ENDPOINT "\",\"sub\":\"" ENDPOINT "\",\"aud\":\"" TOKEN_URL
                          "\",\"exp\":1800000200}",
                          "missing jti", -EINVAL },
                        { "{\"iss\":\"" ENDPOINT "\",\"sub\":\"admin\",\"aud\":\"" TOKEN_URL
                          "\",\"exp\":1800000200,\"jti\":\"j4\"}",
                          "subject mismatch", -EACCES },
                        { "{\"iss\":\"" ENDPOINT "\",\"sub\":\"" ENDPOINT "\",\"aud\":[\"x\",\"" TOKEN_URL
                          "\"],\"exp\":1800000200,\"jti\":\"j5\"}",
                          NULL, 0 },
                };

                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        _cleanup_free_ char *t = forge(pk, h, cases[i].payload);

                        reason = NULL;
                        CU_ASSERT_EQUAL(token_assertion_verify(dev_pub, t, ENDPOINT, TOKEN_URL, cache, T0, &c, &reason),
                                        cases[i].r);
                        if (cases[i].reason) {
                                CU_ASSERT_PTR_NOT_NULL(reason);
                                if (reason)
                                        CU_ASSERT_STRING_EQUAL(reason, cases[i].reason);
                        }
                        c = token_claims_free(c);
                }
                /* An assertion without kid is checked against the given key. */
                {
                        _cleanup_free_ char *t = forge(pk, "{\"alg\":\"ES256\"}",
                                                       "{\"iss\":\"" ENDPOINT "\",\"sub\":\"" ENDPOINT
                                                       "\",\"aud\":\"" TOKEN_URL "\",\"exp\":1800000200,\"jti\":\"j6\"}");

                        CU_ASSERT_EQUAL(token_assertion_verify(dev_pub, t, ENDPOINT, TOKEN_URL, cache, T0, &c, &reason),
                                        0);
                        c = token_claims_free(c);
                        CU_ASSERT_EQUAL(token_assertion_verify(other, t, ENDPOINT, TOKEN_URL, cache, T0, &c, &reason),
                                        -EBADMSG);
                        CU_ASSERT_STRING_EQUAL(reason, "bad signature");
                }
        }

        /* An assertion is not an access token and vice versa. */
        {
                _cleanup_token_keyset_ token_keyset *s = keyset_of(dev);

                CU_ASSERT_EQUAL(verify_at(s, a, T0, NULL, &reason), -EACCES);
        }

        CU_ASSERT_EQUAL(token_assertion_verify(dev_pub, a, ENDPOINT, TOKEN_URL, NULL, T0, &c, &reason), -EINVAL);
        CU_ASSERT_EQUAL(token_assertion_peek_issuer("a.b.c", &untouched), -EINVAL);
        CU_ASSERT_EQUAL(token_assertion_peek_issuer("nodots", &untouched), -EINVAL);
        CU_ASSERT_PTR_EQUAL(untouched, (char *) 0x1);
}

static void test_replay_cache(void) {
        _cleanup_token_replay_cache_ token_replay_cache *c = NULL;
        token_replay_cache *untouched = (token_replay_cache *) 0x1;
        usec_t t = T0;

        CU_ASSERT_EQUAL(token_replay_cache_new(0, &untouched), -EINVAL);
        CU_ASSERT_PTR_EQUAL(untouched, (token_replay_cache *) 0x1);
        CU_ASSERT_EQUAL_FATAL(token_replay_cache_new(2, &c), 0);

        CU_ASSERT_EQUAL(token_replay_cache_add(c, "dev-a", "j1", t + 100 * USEC_PER_SEC, t), 0);
        CU_ASSERT_EQUAL(token_replay_cache_add(c, "dev-a", "j1", t + 100 * USEC_PER_SEC, t + 50 * USEC_PER_SEC),
                        -EALREADY);
        /* jti are per issuer. */
        CU_ASSERT_EQUAL(token_replay_cache_add(c, "dev-b", "j1", t + 200 * USEC_PER_SEC, t), 0);
        CU_ASSERT_EQUAL(token_replay_cache_size(c), 2);
        /* Full of live entries: refuse rather than forget. */
        CU_ASSERT_EQUAL(token_replay_cache_add(c, "dev-c", "j1", t + 100 * USEC_PER_SEC, t), -ENOBUFS);
        CU_ASSERT_EQUAL(token_replay_cache_add(c, "dev-a", "j1", t + 100 * USEC_PER_SEC, t), -EALREADY);
        /* Once an entry has expired it makes room. */
        CU_ASSERT_EQUAL(token_replay_cache_add(c, "dev-c", "j1", t + 300 * USEC_PER_SEC, t + 100 * USEC_PER_SEC), 0);
        CU_ASSERT_EQUAL(token_replay_cache_size(c), 2);
        CU_ASSERT_EQUAL(token_replay_cache_add(c, "dev-b", "j1", t + 200 * USEC_PER_SEC, t + 150 * USEC_PER_SEC),
                        -EALREADY);
        /* Something already expired is not stored. */
        CU_ASSERT_EQUAL(token_replay_cache_add(c, "dev-d", "j9", t, t + 250 * USEC_PER_SEC), 0);
        CU_ASSERT_EQUAL(token_replay_cache_size(c), 1);
        CU_ASSERT_EQUAL(token_replay_cache_add(c, NULL, "j", t, t), -EINVAL);
        CU_ASSERT_PTR_NULL(token_replay_cache_free(NULL));
}

static CU_TestInfo tests[] = {
        { "keys: kid thumbprint, PEM, wrong types", test_keys },
        { "issue and verify round trip", test_issue_verify },
        { "interop: openssl CLI and libjwt", test_interop },
        { "tampered header, payload, signature; structure", test_tampering },
        { "alg none, HS256 confusion, other algs, crit", test_alg_attacks },
        { "kid missing, unknown, mismatched", test_kid },
        { "exp, nbf, iat with leeway", test_times },
        { "iss, aud, scope, claim types", test_claims },
        { "JWKS export and import", test_jwks },
        { "malformed JWKS rejected", test_jwks_malformed },
        { "client assertion: verify, replay, lifetime", test_assertion },
        { "replay cache: bounded, expiring", test_replay_cache },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("jwt", tests, init, cleanup)
