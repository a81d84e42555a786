/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encoding.h"
#include "fileio.h"
#include "id.h"
#include "log.h"
#include "pem.h"
#include "sha256.h"
#include "token.h"

#define COORD_SIZE 32
#define ES256_SIG_SIZE (2 * COORD_SIZE)
#define KID_MAX 128
#define JTI_MAX 256
/* 9999-12-31T23:59:59Z: later NumericDates are nonsense, and bounding them
 * keeps the conversion to usec_t from overflowing. */
#define NUMERIC_DATE_MAX INT64_C(253402300799)

struct token_key {
        EVP_PKEY *pkey;
        bool has_private;
        uint8_t x[COORD_SIZE], y[COORD_SIZE];
        char *kid;
};

struct token_keyset {
        token_key *keys[TOKEN_JWKS_MAX_KEYS];
        size_t n;
};

struct token_claims {
        json_t *header, *payload;
        usec_t exp, nbf, iat;
};

struct replay_entry {
        char *issuer, *jti;
        usec_t expiry;
};

struct token_replay_cache {
        struct replay_entry *entries;
        size_t n, max;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(ECDSA_SIG *, ECDSA_SIG_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(jwt_t *, jwt_free);

static int fail(int r, const char *reason, const char **ret_reason) {
        log_debug("Token rejected: %s", reason);
        if (ret_reason)
                *ret_reason = reason;
        return r;
}

/* --- keys ------------------------------------------------------------------ */

token_key *token_key_free(token_key *k) {
        if (!k)
                return NULL;
        /* EVP_PKEY_free() cleanses the private scalar. */
        EVP_PKEY_free(k->pkey);
        free(k->kid);
        free(k);
        return NULL;
}

/* RFC 7638 §3.2: the required members only, in lexicographic order, no
 * whitespace. x and y are base64url, so they need no escaping. */
static int jwk_thumbprint(const uint8_t x[static COORD_SIZE], const uint8_t y[static COORD_SIZE], char **ret) {
        _cleanup_free_ char *bx = NULL, *by = NULL, *json = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        int r;

        r = base64url_encode(x, COORD_SIZE, &bx);
        if (r < 0)
                return r;
        r = base64url_encode(y, COORD_SIZE, &by);
        if (r < 0)
                return r;
        if (asprintf(&json, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", bx, by) < 0)
                return -ENOMEM;
        r = sha256_buffer(json, strlen(json), digest);
        if (r < 0)
                return r;
        return base64url_encode(digest, sizeof(digest), ret);
}

static int bn_param_to_bin(EVP_PKEY *pkey, const char *name, uint8_t out[static COORD_SIZE]) {
        _cleanup_(BN_freep) BIGNUM *bn = NULL;

        if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1)
                return openssl_error(-EIO, "Reading EC public point");
        if (BN_bn2binpad(bn, out, COORD_SIZE) != COORD_SIZE)
                return openssl_error(-EIO, "Encoding EC coordinate");
        return 0;
}

/* Takes pkey if it is a valid P-256 key; kid NULL means the thumbprint. */
static int key_wrap(EVP_PKEY **pkey, bool has_private, const char *kid, token_key **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(token_key_freep) token_key *k = NULL;
        char group[64];
        size_t n = 0;
        int r;

        if (EVP_PKEY_get_base_id(*pkey) != EVP_PKEY_EC)
                return -EKEYREJECTED;
        if (EVP_PKEY_get_group_name(*pkey, group, sizeof(group), &n) != 1 || !streq(group, "prime256v1"))
                return openssl_error(-EKEYREJECTED, "P-256 group check");

        /* A point off the curve would make signatures "verify" in
         * meaningless ways (invalid-curve attacks): check every key that
         * comes in, whatever its encoding. */
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, *pkey, NULL);
        if (!ctx)
                return -ENOMEM;
        if (EVP_PKEY_public_check(ctx) != 1)
                return openssl_error(-EINVAL, "EC public key check");

        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        r = bn_param_to_bin(*pkey, OSSL_PKEY_PARAM_EC_PUB_X, k->x);
        if (r < 0)
                return r;
        r = bn_param_to_bin(*pkey, OSSL_PKEY_PARAM_EC_PUB_Y, k->y);
        if (r < 0)
                return r;
        if (kid) {
                k->kid = strdup(kid);
                if (!k->kid)
                        return -ENOMEM;
        } else {
                r = jwk_thumbprint(k->x, k->y, &k->kid);
                if (r < 0)
                        return r;
        }
        k->pkey = TAKE_PTR(*pkey);
        k->has_private = has_private;
        *ret = TAKE_PTR(k);
        return 0;
}

static int key_from_xy(const uint8_t x[static COORD_SIZE], const uint8_t y[static COORD_SIZE], const char *kid,
                       token_key **ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        uint8_t point[1 + 2 * COORD_SIZE];

        /* SEC 1 uncompressed point. */
        point[0] = 0x04;
        memcpy(point + 1, x, COORD_SIZE);
        memcpy(point + 1 + COORD_SIZE, y, COORD_SIZE);

        bld = OSSL_PARAM_BLD_new();
        if (!bld)
                return -ENOMEM;
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1)
                return openssl_error(-ENOMEM, "Building EC parameters");
        params = OSSL_PARAM_BLD_to_param(bld);
        if (!params)
                return openssl_error(-ENOMEM, "Building EC parameters");

        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!ctx)
                return openssl_error(-ENOMEM, "EC context");
        if (EVP_PKEY_fromdata_init(ctx) != 1)
                return openssl_error(-EIO, "EC import init");
        /* Fails for a point that is not on the curve. */
        if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
                return openssl_error(-EINVAL, "EC public key import");
        return key_wrap(&pkey, false, kid, ret);
}

int token_key_generate(token_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;

        if (!ret)
                return -EINVAL;
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!pkey)
                return openssl_error(-EIO, "P-256 key generation");
        return key_wrap(&pkey, true, NULL, ret);
}

bool token_key_has_private(const token_key *k) {
        return k && k->has_private;
}

const char *token_key_get_kid(const token_key *k) {
        return k ? k->kid : NULL;
}

int token_key_public_copy(const token_key *k, token_key **ret) {
        if (!k || !ret)
                return -EINVAL;
        return key_from_xy(k->x, k->y, k->kid, ret);
}

bool token_key_public_equal(const token_key *a, const token_key *b) {
        if (!a || !b)
                return false;
        return memcmp(a->x, b->x, COORD_SIZE) == 0 && memcmp(a->y, b->y, COORD_SIZE) == 0;
}

int token_key_from_private_pem(const char *pem, size_t len, token_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = pem_read_private_key(pem, len, &pkey);
        if (r < 0)
                return r;
        return key_wrap(&pkey, true, NULL, ret);
}

int token_key_load_private_pem(const char *path, token_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = pem_load_private_key(path, &pkey);
        if (r < 0)
                return r;
        return key_wrap(&pkey, true, NULL, ret);
}

int token_key_save_private_pem(const token_key *k, const char *path) {
        if (!k || !path)
                return -EINVAL;
        if (!k->has_private)
                return -ENOKEY;
        return pem_save_private_key(k->pkey, path);
}

int token_key_get_public_pem(const token_key *k, char **ret) {
        if (!k)
                return -EINVAL;
        return pem_write_public_key(k->pkey, ret);
}

int token_key_from_public_pem(const char *pem, size_t len, token_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = pem_read_public_key(pem, len, &pkey);
        if (r < 0)
                return r;
        return key_wrap(&pkey, false, NULL, ret);
}

static json_t *jwk_to_json(const token_key *k) {
        _cleanup_free_ char *bx = NULL, *by = NULL;

        if (base64url_encode(k->x, COORD_SIZE, &bx) < 0 || base64url_encode(k->y, COORD_SIZE, &by) < 0)
                return NULL;
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", bx, "y", by,
                         "kid", k->kid, "alg", TOKEN_ALG, "use", "sig");
}

static char *json_dump_compact(const json_t *j) {
        return json_dumps(j, JSON_COMPACT);
}

int token_key_to_jwk(const token_key *k, char **ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        char *s;

        if (!k || !ret)
                return -EINVAL;
        j = jwk_to_json(k);
        if (!j)
                return -ENOMEM;
        s = json_dump_compact(j);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* An optional string member: 0 and *ret = NULL if absent, -EINVAL if it is
 * there but not a string. */
static int json_member_string(const json_t *o, const char *key, const char **ret) {
        json_t *v = json_object_get(o, key);

        if (!v) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return -EINVAL;
        *ret = json_string_value(v);
        return 0;
}

static int jwk_coordinate(const json_t *o, const char *name, uint8_t out[static COORD_SIZE],
                          const char **ret_reason) {
        const char *s;
        _cleanup_free_ void *d = NULL;
        size_t n;

        if (json_member_string(o, name, &s) < 0)
                return fail(-EINVAL, streq(name, "x") ? "x is not a string" : "y is not a string", ret_reason);
        if (!s)
                return fail(-EINVAL, streq(name, "x") ? "missing x" : "missing y", ret_reason);
        if (base64url_decode(s, SIZE_MAX, &d, &n) < 0)
                return fail(-EINVAL, streq(name, "x") ? "bad base64url in x" : "bad base64url in y", ret_reason);
        /* RFC 7518 §6.2.1.2: the full coordinate size, leading zeros kept. */
        if (n != COORD_SIZE)
                return fail(-EINVAL, streq(name, "x") ? "x has the wrong length" : "y has the wrong length",
                            ret_reason);
        memcpy(out, d, COORD_SIZE);
        return 0;
}

static int jwk_from_json(const json_t *o, token_key **ret, const char **ret_reason) {
        const char *kty, *crv, *alg, *use, *kid;
        uint8_t x[COORD_SIZE], y[COORD_SIZE];
        int r;

        if (!json_is_object(o))
                return fail(-EINVAL, "JWK is not a JSON object", ret_reason);
        if (json_member_string(o, "kty", &kty) < 0 || !kty)
                return fail(-EINVAL, "missing kty", ret_reason);
        if (!streq(kty, "EC"))
                return fail(-EINVAL, "unsupported kty", ret_reason);
        if (json_member_string(o, "crv", &crv) < 0 || !crv)
                return fail(-EINVAL, "missing crv", ret_reason);
        if (!streq(crv, "P-256"))
                return fail(-EINVAL, "unsupported crv", ret_reason);
        /* A JWKS is public; a private scalar in it is a leak we do not
         * want to propagate, and a sign of confusion on the other side. */
        if (json_object_get(o, "d"))
                return fail(-EINVAL, "private key in JWK", ret_reason);
        if (json_member_string(o, "alg", &alg) < 0 || (alg && !streq(alg, TOKEN_ALG)))
                return fail(-EINVAL, "unsupported alg", ret_reason);
        if (json_member_string(o, "use", &use) < 0 || (use && !streq(use, "sig")))
                return fail(-EINVAL, "unsupported use", ret_reason);
        if (json_member_string(o, "kid", &kid) < 0 || (kid && (!*kid || strlen(kid) > KID_MAX)))
                return fail(-EINVAL, "invalid kid", ret_reason);

        r = jwk_coordinate(o, "x", x, ret_reason);
        if (r < 0)
                return r;
        r = jwk_coordinate(o, "y", y, ret_reason);
        if (r < 0)
                return r;

        r = key_from_xy(x, y, kid, ret);
        if (r == -EINVAL || r == -EKEYREJECTED)
                return fail(-EINVAL, "point not on the curve", ret_reason);
        return r;
}

static int json_parse(const char *s, size_t len, json_t **ret) {
        json_t *j;

        /* Duplicate members would let two parsers read two different
         * tokens from the same bytes. */
        j = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                return -EINVAL;
        *ret = j;
        return 0;
}

int token_key_from_jwk(const char *json, size_t len, token_key **ret, const char **ret_reason) {
        _cleanup_(json_decrefp) json_t *j = NULL;

        if (!json || !ret)
                return fail(-EINVAL, "missing argument", ret_reason);
        if (len == SIZE_MAX)
                len = strlen(json);
        if (len > TOKEN_JWKS_MAX_SIZE)
                return fail(-EINVAL, "JWK too large", ret_reason);
        if (json_parse(json, len, &j) < 0)
                return fail(-EINVAL, "JWK is not valid JSON", ret_reason);
        return jwk_from_json(j, ret, ret_reason);
}

/* --- key sets ---------------------------------------------------------------- */

int token_keyset_new(token_keyset **ret) {
        token_keyset *s;

        if (!ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

token_keyset *token_keyset_free(token_keyset *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                token_key_free(s->keys[i]);
        free(s);
        return NULL;
}

static int keyset_take(token_keyset *s, token_key **k) {
        if (token_keyset_find(s, (*k)->kid))
                return -EEXIST;
        if (s->n >= TOKEN_JWKS_MAX_KEYS)
                return -E2BIG;
        s->keys[s->n++] = TAKE_PTR(*k);
        return 0;
}

int token_keyset_add(token_keyset *s, const token_key *k) {
        _cleanup_(token_key_freep) token_key *copy = NULL;
        int r;

        if (!s || !k)
                return -EINVAL;
        if (token_keyset_find(s, k->kid))
                return -EEXIST;
        r = token_key_public_copy(k, &copy);
        if (r < 0)
                return r;
        return keyset_take(s, &copy);
}

size_t token_keyset_size(const token_keyset *s) {
        return s ? s->n : 0;
}

const token_key *token_keyset_find(const token_keyset *s, const char *kid) {
        if (!s || !kid)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->keys[i]->kid, kid))
                        return s->keys[i];
        return NULL;
}

int token_keyset_to_jwks(const token_keyset *s, char **ret) {
        _cleanup_(json_decrefp) json_t *keys = NULL, *doc = NULL;
        char *text;

        if (!s || !ret)
                return -EINVAL;
        keys = json_array();
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
                if (json_array_append_new(keys, jwk_to_json(s->keys[i])) < 0)
                        return -ENOMEM;
        doc = json_pack("{s:O}", "keys", keys);
        if (!doc)
                return -ENOMEM;
        text = json_dump_compact(doc);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

int token_keyset_from_jwks(const char *json, size_t len, token_keyset **ret, const char **ret_reason) {
        _cleanup_(token_keyset_freep) token_keyset *s = NULL;
        _cleanup_(json_decrefp) json_t *doc = NULL;
        json_t *keys, *v;
        size_t i;
        int r;

        if (!json || !ret)
                return fail(-EINVAL, "missing argument", ret_reason);
        if (len == SIZE_MAX)
                len = strlen(json);
        if (len > TOKEN_JWKS_MAX_SIZE)
                return fail(-EINVAL, "JWKS too large", ret_reason);
        if (json_parse(json, len, &doc) < 0)
                return fail(-EINVAL, "JWKS is not valid JSON", ret_reason);
        if (!json_is_object(doc))
                return fail(-EINVAL, "JWKS is not a JSON object", ret_reason);
        keys = json_object_get(doc, "keys");
        if (!json_is_array(keys))
                return fail(-EINVAL, "missing keys array", ret_reason);
        if (json_array_size(keys) > TOKEN_JWKS_MAX_KEYS)
                return fail(-EINVAL, "too many keys", ret_reason);

        r = token_keyset_new(&s);
        if (r < 0)
                return r;
        json_array_foreach(keys, i, v) {
                _cleanup_(token_key_freep) token_key *k = NULL;

                r = jwk_from_json(v, &k, ret_reason);
                if (r < 0)
                        return r;
                r = keyset_take(s, &k);
                if (r == -EEXIST)
                        return fail(-EINVAL, "duplicate kid", ret_reason);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* --- signing ----------------------------------------------------------------- */

/* libjwt signs: its ES256 output is the raw R||S of RFC 7518 §3.4 (checked
 * against the openssl command line in the tests). It is not used to
 * verify, see token_verify(). */
static int jws_sign(const token_key *k, const json_t *claims, char **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        _cleanup_(jwt_freep) jwt_t *jwt = NULL;
        _cleanup_free_ char *grants = NULL;
        char *pem, *s;
        size_t n;
        int r;

        if (!k->has_private)
                return -ENOKEY;
        r = pem_write_private_key(k->pkey, &bio, &pem, &n);
        if (r < 0)
                return r;
        grants = json_dump_compact(claims);
        if (!grants)
                return -ENOMEM;

        r = jwt_new(&jwt);
        if (r != 0)
                return -abs(r);
        r = jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *) pem, (int) n);
        if (r != 0)
                return -abs(r);
        r = jwt_add_header(jwt, "kid", k->kid);
        if (r != 0)
                return -abs(r);
        /* As JSON rather than jwt_add_grant_int(): that takes a long, which
         * is 32 bits on the 32-bit ARM devices this runs on. */
        r = jwt_add_grants_json(jwt, grants);
        if (r != 0)
                return -abs(r);
        s = jwt_encode_str(jwt);
        if (!s)
                return errno > 0 ? -errno : -EIO;
        *ret = s;
        return 0;
}

static bool scope_token_char(char c) {
        /* RFC 6749 §3.3: %x21 / %x23-5B / %x5D-7E. */
        return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

static bool scope_is_valid(const char *s) {
        bool in_token = false;

        if (!*s)
                return false;
        for (; *s; s++) {
                if (*s == ' ') {
                        if (!in_token)
                                return false;
                        in_token = false;
                } else if (scope_token_char(*s))
                        in_token = true;
                else
                        return false;
        }
        return in_token;
}

static usec_t realtime_or(usec_t t) {
        return t > 0 ? t : now(CLOCK_REALTIME);
}

int token_issue(const token_key *k, const token_issue_params *p, char **ret) {
        _cleanup_(json_decrefp) json_t *claims = NULL;
        char jti[ID_UUID_STRING_MAX];
        json_int_t iat, exp;
        int r;

        if (!k || !p || !ret || !p->issuer || !*p->issuer || !p->subject || !*p->subject || !p->audience ||
            !*p->audience || p->lifetime == 0 || p->lifetime == USEC_INFINITY)
                return -EINVAL;
        if (p->scope && *p->scope && !scope_is_valid(p->scope))
                return -EINVAL;
        if (!k->has_private)
                return -ENOKEY;
        if (p->lifetime > (usec_t) NUMERIC_DATE_MAX * USEC_PER_SEC)
                return -ERANGE;

        iat = (json_int_t) (realtime_or(p->now) / USEC_PER_SEC);
        exp = iat + (json_int_t) ((p->lifetime + USEC_PER_SEC - 1) / USEC_PER_SEC);
        if (exp > NUMERIC_DATE_MAX)
                return -ERANGE;
        r = id_uuid_new(jti);
        if (r < 0)
                return r;

        claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", p->issuer, "sub", p->subject, "aud",
                           p->audience, "iat", iat, "nbf", iat, "exp", exp, "jti", jti);
        if (!claims)
                return -ENOMEM;
        if (p->scope && *p->scope && json_object_set_new(claims, "scope", json_string(p->scope)) < 0)
                return -ENOMEM;
        if (p->authorized_party) {
                json_t *azp = json_string(p->authorized_party);

                if (!azp)
                        return -EINVAL; /* not UTF-8 */
                if (json_object_set_new(claims, "azp", azp) < 0)
                        return -ENOMEM;
        }
        return jws_sign(k, claims, ret);
}

int token_assertion_new(const token_key *device_key, const char *endpoint, const char *token_url,
                        usec_t lifetime, usec_t t, char **ret) {
        _cleanup_(json_decrefp) json_t *claims = NULL;
        char jti[ID_UUID_STRING_MAX];
        json_int_t iat, exp;
        int r;

        if (!device_key || !endpoint || !*endpoint || !token_url || !*token_url || !ret || lifetime == 0)
                return -EINVAL;
        if (lifetime > TOKEN_ASSERTION_MAX_LIFETIME_USEC)
                return -ERANGE;
        if (!device_key->has_private)
                return -ENOKEY;

        iat = (json_int_t) (realtime_or(t) / USEC_PER_SEC);
        exp = iat + (json_int_t) ((lifetime + USEC_PER_SEC - 1) / USEC_PER_SEC);
        r = id_uuid_new(jti);
        if (r < 0)
                return r;
        claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss", endpoint, "sub", endpoint, "aud", token_url,
                           "iat", iat, "exp", exp, "jti", jti);
        if (!claims)
                return -ENOMEM;
        return jws_sign(device_key, claims, ret);
}

/* --- verification -------------------------------------------------------------- */

token_claims *token_claims_free(token_claims *c) {
        if (!c)
                return NULL;
        json_decref(c->header);
        json_decref(c->payload);
        free(c);
        return NULL;
}

int token_claims_dup(const token_claims *c, token_claims **ret) {
        token_claims *d;

        if (!c || !ret)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        /* Claims are never changed after verification, so sharing the JSON
         * is as good as a copy and costs no allocation. */
        *d = (token_claims) {
                .header = json_incref(c->header),
                .payload = json_incref(c->payload),
                .exp = c->exp,
                .nbf = c->nbf,
                .iat = c->iat,
        };
        *ret = d;
        return 0;
}

static const char *claim_string(const token_claims *c, const char *name) {
        const char *s = NULL;

        if (!c)
                return NULL;
        (void) json_member_string(c->payload, name, &s);
        return s;
}

const char *token_claims_get_issuer(const token_claims *c) {
        return claim_string(c, "iss");
}

const char *token_claims_get_subject(const token_claims *c) {
        return claim_string(c, "sub");
}

const char *token_claims_get_scope(const token_claims *c) {
        return c ? claim_string(c, "scope") ?: "" : NULL;
}

const char *token_claims_get_jti(const token_claims *c) {
        return claim_string(c, "jti");
}

const char *token_claims_get_authorized_party(const token_claims *c) {
        return claim_string(c, "azp");
}

const char *token_claims_get_kid(const token_claims *c) {
        const char *s = NULL;

        if (!c)
                return NULL;
        (void) json_member_string(c->header, "kid", &s);
        return s;
}

usec_t token_claims_get_expiry(const token_claims *c) {
        return c ? c->exp : 0;
}

usec_t token_claims_get_issued_at(const token_claims *c) {
        return c ? c->iat : 0;
}

/* True if the space-separated list contains word as a whole item. */
static bool list_contains(const char *list, const char *word, size_t n) {
        const char *p = list;

        while (p && *p) {
                size_t l = strcspn(p, " ");

                if (l == n && strncmp(p, word, n) == 0)
                        return true;
                p += l;
                p += strspn(p, " ");
        }
        return false;
}

bool token_claims_has_scope(const token_claims *c, const char *scope) {
        if (!c || !scope || !*scope || strchr(scope, ' '))
                return false;
        return list_contains(token_claims_get_scope(c), scope, strlen(scope));
}

static int es256_verify(EVP_PKEY *pkey, const char *data, size_t n, const uint8_t sig[static ES256_SIG_SIZE]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *es = NULL;
        BIGNUM *r = NULL, *s = NULL;
        unsigned char *der = NULL;
        int der_len, ok;

        /* JWS carries R||S (RFC 7518 §3.4); OpenSSL wants DER. */
        es = ECDSA_SIG_new();
        r = BN_bin2bn(sig, COORD_SIZE, NULL);
        s = BN_bin2bn(sig + COORD_SIZE, COORD_SIZE, NULL);
        if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
                BN_free(r);
                BN_free(s);
                return -ENOMEM;
        }
        der_len = i2d_ECDSA_SIG(es, &der);
        if (der_len <= 0)
                return openssl_error(-ENOMEM, "Encoding ECDSA signature");

        ctx = EVP_MD_CTX_new();
        if (!ctx) {
                OPENSSL_free(der);
                return -ENOMEM;
        }
        ok = EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
             EVP_DigestVerify(ctx, der, (size_t) der_len, (const unsigned char *) data, n) == 1;
        OPENSSL_free(der);
        if (!ok)
                return openssl_error(-EBADMSG, "ES256 verify");
        return 0;
}

static int b64_json_object(const char *s, size_t len, json_t **ret) {
        _cleanup_free_ void *d = NULL;
        json_t *j;
        size_t n;

        if (base64url_decode(s, len, &d, &n) < 0)
                return -EBADMSG;
        if (json_parse(d, n, &j) < 0)
                return -EINVAL;
        if (!json_is_object(j)) {
                json_decref(j);
                return -EINVAL;
        }
        *ret = j;
        return 0;
}

/* Splits a compact JWS into its three parts, without decoding them. */
static int jws_split(const char *token, const char **ret_dot1, const char **ret_dot2, size_t *ret_len) {
        const char *d1, *d2;
        size_t len;

        len = strnlen(token, TOKEN_MAX_SIZE + 1);
        if (len > TOKEN_MAX_SIZE)
                return -E2BIG;
        d1 = memchr(token, '.', len);
        if (!d1)
                return -EINVAL;
        d2 = memchr(d1 + 1, '.', len - (size_t) (d1 + 1 - token));
        if (!d2 || memchr(d2 + 1, '.', len - (size_t) (d2 + 1 - token)))
                return -EINVAL;
        if (d1 == token || d2 == d1 + 1)
                return -EINVAL;
        *ret_dot1 = d1;
        *ret_dot2 = d2;
        *ret_len = len;
        return 0;
}

/* Everything about the JWS itself: structure, header, alg, kid, signature.
 * Either keys (kid required, looked up there) or single (kid optional,
 * must be single's if present). The payload is parsed only once the
 * signature is known to be good. */
static int jws_verify(const char *token, const token_keyset *keys, const token_key *single,
                      token_claims **ret, const char **ret_reason) {
        _cleanup_(json_decrefp) json_t *header = NULL, *payload = NULL;
        _cleanup_free_ void *payload_raw = NULL, *sig = NULL;
        const char *d1, *d2, *alg, *kid, *typ;
        const token_key *key;
        size_t len, payload_size, sig_size;
        token_claims *c;
        int r;

        r = jws_split(token, &d1, &d2, &len);
        if (r == -E2BIG)
                return fail(-EINVAL, "token too large", ret_reason);
        if (r < 0)
                return fail(-EINVAL, "malformed token", ret_reason);

        r = b64_json_object(token, (size_t) (d1 - token), &header);
        if (r == -EBADMSG)
                return fail(-EINVAL, "bad base64url in header", ret_reason);
        if (r < 0)
                return fail(-EINVAL, "header is not a JSON object", ret_reason);

        if (json_member_string(header, "alg", &alg) < 0 || !alg)
                return fail(-EINVAL, "missing alg", ret_reason);
        if (streq(alg, "none"))
                return fail(-EPROTONOSUPPORT, "alg none rejected", ret_reason);
        if (strncmp(alg, "HS", 2) == 0)
                return fail(-EPROTONOSUPPORT, "HMAC alg rejected", ret_reason);
        if (!streq(alg, TOKEN_ALG))
                return fail(-EPROTONOSUPPORT, "alg not supported", ret_reason);
        /* RFC 7515 §4.1.11: extensions we do not know must be refused. */
        if (json_object_get(header, "crit"))
                return fail(-EPROTONOSUPPORT, "crit header not supported", ret_reason);
        if (json_member_string(header, "typ", &typ) < 0 || (typ && strcasecmp(typ, "JWT") != 0))
                return fail(-EINVAL, "unexpected typ", ret_reason);

        if (json_member_string(header, "kid", &kid) < 0)
                return fail(-EINVAL, "invalid kid", ret_reason);
        if (keys) {
                if (!kid)
                        return fail(-ENOKEY, "missing kid", ret_reason);
                key = token_keyset_find(keys, kid);
        } else
                key = !kid || streq(kid, single->kid) ? single : NULL;
        if (!key)
                return fail(-ENOKEY, "unknown kid", ret_reason);

        if (base64url_decode(d1 + 1, (size_t) (d2 - d1 - 1), &payload_raw, &payload_size) < 0)
                return fail(-EINVAL, "bad base64url in payload", ret_reason);
        if (base64url_decode(d2 + 1, len - (size_t) (d2 + 1 - token), &sig, &sig_size) < 0)
                return fail(-EINVAL, "bad base64url in signature", ret_reason);
        if (sig_size != ES256_SIG_SIZE)
                return fail(-EBADMSG, "bad signature", ret_reason);
        r = es256_verify(key->pkey, token, (size_t) (d2 - token), sig);
        if (r == -EBADMSG)
                return fail(-EBADMSG, "bad signature", ret_reason);
        if (r < 0)
                return r;

        if (json_parse(payload_raw, payload_size, &payload) < 0 || !json_is_object(payload))
                return fail(-EINVAL, "payload is not a JSON object", ret_reason);

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->header = TAKE_PTR(header);
        c->payload = TAKE_PTR(payload);
        *ret = c;
        return 0;
}

/* An optional NumericDate: 0 if absent. Integers only: we issue nothing
 * else, and fractions would only add rounding questions. */
static int claim_date(const json_t *payload, const char *name, usec_t *ret) {
        json_t *v = json_object_get(payload, name);
        json_int_t t;

        if (!v) {
                *ret = 0;
                return 0;
        }
        if (!json_is_integer(v))
                return -EINVAL;
        t = json_integer_value(v);
        if (t <= 0 || t > NUMERIC_DATE_MAX)
                return -EINVAL;
        *ret = (usec_t) t * USEC_PER_SEC;
        return 0;
}

static int claims_check_syntax(token_claims *c, const char **ret_reason) {
        const char *s;
        json_t *aud, *v;
        size_t i;

        if (json_member_string(c->payload, "iss", &s) < 0 || !s || !*s)
                return fail(-EINVAL, "missing iss", ret_reason);
        if (json_member_string(c->payload, "sub", &s) < 0 || !s || !*s)
                return fail(-EINVAL, "missing sub", ret_reason);

        /* RFC 7519 §4.1.3: one string or an array of them. */
        aud = json_object_get(c->payload, "aud");
        if (!aud)
                return fail(-EINVAL, "missing aud", ret_reason);
        if (json_is_array(aud)) {
                if (json_array_size(aud) == 0)
                        return fail(-EINVAL, "invalid aud", ret_reason);
                json_array_foreach(aud, i, v)
                        if (!json_is_string(v))
                                return fail(-EINVAL, "invalid aud", ret_reason);
        } else if (!json_is_string(aud))
                return fail(-EINVAL, "invalid aud", ret_reason);

        if (!json_object_get(c->payload, "exp"))
                return fail(-EINVAL, "missing exp", ret_reason);
        if (claim_date(c->payload, "exp", &c->exp) < 0)
                return fail(-EINVAL, "invalid exp", ret_reason);
        if (claim_date(c->payload, "nbf", &c->nbf) < 0)
                return fail(-EINVAL, "invalid nbf", ret_reason);
        if (claim_date(c->payload, "iat", &c->iat) < 0)
                return fail(-EINVAL, "invalid iat", ret_reason);

        if (json_member_string(c->payload, "scope", &s) < 0)
                return fail(-EINVAL, "invalid scope", ret_reason);
        if (json_member_string(c->payload, "jti", &s) < 0 || (s && (!*s || strlen(s) > JTI_MAX)))
                return fail(-EINVAL, "invalid jti", ret_reason);
        return 0;
}

static int claims_check_times(const token_claims *c, usec_t t, const char **ret_reason) {
        if (t > c->exp + TOKEN_LEEWAY_USEC)
                return fail(-ESTALE, "token expired", ret_reason);
        if (c->nbf > 0 && t + TOKEN_LEEWAY_USEC < c->nbf)
                return fail(-EAGAIN, "token not yet valid", ret_reason);
        if (c->iat > 0 && t + TOKEN_LEEWAY_USEC < c->iat)
                return fail(-EAGAIN, "token issued in the future", ret_reason);
        return 0;
}

static bool claims_audience_contains(const token_claims *c, const char *audience) {
        json_t *aud = json_object_get(c->payload, "aud"), *v;
        size_t i;

        if (json_is_string(aud))
                return streq(json_string_value(aud), audience);
        json_array_foreach(aud, i, v)
                if (streq(json_string_value(v), audience))
                        return true;
        return false;
}

int token_verify(const token_keyset *keys, const char *token, const token_verify_params *p,
                 token_claims **ret, const char **ret_reason) {
        _cleanup_(token_claims_freep) token_claims *c = NULL;
        const char *want;
        int r;

        if (!keys || !token || !p || !p->issuer || !p->audience || !ret)
                return fail(-EINVAL, "missing argument", ret_reason);

        r = jws_verify(token, keys, NULL, &c, ret_reason);
        if (r < 0)
                return r;
        r = claims_check_syntax(c, ret_reason);
        if (r < 0)
                return r;
        r = claims_check_times(c, realtime_or(p->now), ret_reason);
        if (r < 0)
                return r;
        if (!streq(token_claims_get_issuer(c), p->issuer))
                return fail(-EACCES, "issuer mismatch", ret_reason);
        if (!claims_audience_contains(c, p->audience))
                return fail(-EACCES, "audience mismatch", ret_reason);

        want = p->scope ?: "";
        while (*want) {
                size_t l = strcspn(want, " ");

                if (l > 0 && !list_contains(token_claims_get_scope(c), want, l))
                        return fail(-EPERM, "missing scope", ret_reason);
                want += l;
                want += strspn(want, " ");
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int token_assertion_peek_issuer(const char *assertion, char **ret) {
        _cleanup_(json_decrefp) json_t *payload = NULL;
        const char *d1, *d2, *iss;
        size_t len;
        char *s;
        int r;

        if (!assertion || !ret)
                return -EINVAL;
        r = jws_split(assertion, &d1, &d2, &len);
        if (r < 0)
                return -EINVAL;
        r = b64_json_object(d1 + 1, (size_t) (d2 - d1 - 1), &payload);
        if (r < 0)
                return -EINVAL;
        if (json_member_string(payload, "iss", &iss) < 0 || !iss || !*iss)
                return -EINVAL;
        s = strdup(iss);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int token_assertion_verify(const token_key *device_key, const char *assertion, const char *endpoint,
                           const char *token_url, token_replay_cache *cache, usec_t t, token_claims **ret,
                           const char **ret_reason) {
        _cleanup_(token_claims_freep) token_claims *c = NULL;
        int r;

        if (!device_key || !assertion || !endpoint || !token_url || !cache || !ret)
                return fail(-EINVAL, "missing argument", ret_reason);
        t = realtime_or(t);

        r = jws_verify(assertion, NULL, device_key, &c, ret_reason);
        if (r < 0)
                return r;
        r = claims_check_syntax(c, ret_reason);
        if (r < 0)
                return r;
        r = claims_check_times(c, t, ret_reason);
        if (r < 0)
                return r;
        if (!streq(token_claims_get_issuer(c), endpoint))
                return fail(-EACCES, "issuer mismatch", ret_reason);
        if (!streq(token_claims_get_subject(c), endpoint))
                return fail(-EACCES, "subject mismatch", ret_reason);
        if (!claims_audience_contains(c, token_url))
                return fail(-EACCES, "audience mismatch", ret_reason);
        if (!token_claims_get_jti(c))
                return fail(-EINVAL, "missing jti", ret_reason);
        /* A long-lived assertion would have to be remembered as long by the
         * replay cache; RFC 7523 §3 lets us bound it. */
        if (c->exp > t + TOKEN_ASSERTION_MAX_LIFETIME_USEC + TOKEN_LEEWAY_USEC ||
            (c->iat > 0 && c->exp > c->iat + TOKEN_ASSERTION_MAX_LIFETIME_USEC))
                return fail(-ERANGE, "assertion lifetime too long", ret_reason);

        /* Last, so that only assertions that are good in every other way
         * take a place in the cache. */
        r = token_replay_cache_add(cache, endpoint, token_claims_get_jti(c), c->exp + TOKEN_LEEWAY_USEC, t);
        if (r == -EALREADY)
                return fail(-EALREADY, "assertion replayed", ret_reason);
        if (r == -ENOBUFS)
                return fail(-ENOBUFS, "replay cache full", ret_reason);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

/* --- replay cache ---------------------------------------------------------------- */

int token_replay_cache_new(size_t max_entries, token_replay_cache **ret) {
        token_replay_cache *c;

        if (!ret || max_entries == 0 || max_entries > SIZE_MAX / sizeof(struct replay_entry))
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->entries = calloc(max_entries, sizeof(struct replay_entry));
        if (!c->entries) {
                free(c);
                return -ENOMEM;
        }
        c->max = max_entries;
        *ret = c;
        return 0;
}

static void replay_entry_clear(struct replay_entry *e) {
        free(e->issuer);
        free(e->jti);
        *e = (struct replay_entry) {};
}

token_replay_cache *token_replay_cache_free(token_replay_cache *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n; i++)
                replay_entry_clear(&c->entries[i]);
        free(c->entries);
        free(c);
        return NULL;
}

size_t token_replay_cache_size(const token_replay_cache *c) {
        return c ? c->n : 0;
}

/* Linear: the cache is bounded and small (assertions live minutes, devices
 * authenticate every few hours), a scan beats a hash table's bookkeeping. */
int token_replay_cache_add(token_replay_cache *c, const char *issuer, const char *jti, usec_t expiry,
                           usec_t t) {
        struct replay_entry e;

        if (!c || !issuer || !jti)
                return -EINVAL;

        for (size_t i = 0; i < c->n;) {
                if (c->entries[i].expiry <= t) {
                        replay_entry_clear(&c->entries[i]);
                        c->entries[i] = c->entries[--c->n];
                        c->entries[c->n] = (struct replay_entry) {};
                        continue;
                }
                if (streq(c->entries[i].issuer, issuer) && streq(c->entries[i].jti, jti))
                        return -EALREADY;
                i++;
        }
        /* Already expired: nothing to remember, and nothing to accept
         * either, since the token it came from is no longer valid. */
        if (expiry <= t)
                return 0;
        if (c->n >= c->max)
                return -ENOBUFS;

        e = (struct replay_entry) { .issuer = strdup(issuer), .jti = strdup(jti), .expiry = expiry };
        if (!e.issuer || !e.jti) {
                replay_entry_clear(&e);
                return -ENOMEM;
        }
        c->entries[c->n++] = e;
        return 0;
}
