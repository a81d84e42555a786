/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The IdM's JSON Web Tokens: ES256 keys, JWKS, access tokens and device
 * client assertions (RFC 7523). docs/idm.md describes the formats.
 *
 * Only ES256 (ECDSA P-256 with SHA-256, RFC 7518 §3.4) is issued and
 * accepted. The algorithm is pinned by the verifier, never taken from the
 * token: "none", the HMAC algorithms (HS256 with the public key as secret
 * is the classic confusion attack) and everything else are refused before
 * any key is used.
 *
 * Keys are named by their `kid`, the RFC 7638 JWK thumbprint of the public
 * key (base64url of SHA-256 over the canonical JWK). Keys read from a JWKS
 * keep the kid given there.
 *
 * Errors: verification returns a negative errno for the class of failure
 * and a static reason string for the details ("token expired", "audience
 * mismatch"...):
 *   -EINVAL           malformed token or claim, bad argument
 *   -EPROTONOSUPPORT  alg other than ES256, "crit" header
 *   -ENOKEY           missing or unknown kid
 *   -EBADMSG          signature does not verify
 *   -ESTALE           expired (exp + leeway is past)
 *   -EAGAIN           not yet valid (nbf or iat ahead of now + leeway)
 *   -EACCES           iss or aud other than expected
 *   -EPERM            a required scope is not granted
 *   -ERANGE           assertion lifetime longer than allowed
 *   -EALREADY         assertion jti already used (replay)
 *   -ENOBUFS          replay cache full of live entries */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "time-util.h"

#define TOKEN_ALG "ES256"
/* Clock skew tolerated on exp, nbf and iat between hosts. */
#define TOKEN_LEEWAY_USEC (30 * USEC_PER_SEC)
/* RFC 7523 wants assertions short-lived; the replay cache only has to
 * remember a jti this long (plus the leeway). */
#define TOKEN_ASSERTION_MAX_LIFETIME_USEC (5 * USEC_PER_MINUTE)
/* Larger tokens and JWKS documents are refused unparsed. */
#define TOKEN_MAX_SIZE (16 * 1024)
#define TOKEN_JWKS_MAX_SIZE (64 * 1024)
#define TOKEN_JWKS_MAX_KEYS 32
/* base64url of a SHA-256 digest. */
#define TOKEN_KID_THUMBPRINT_LENGTH 43

/* --- keys ------------------------------------------------------------------ */

typedef struct token_key token_key;

int token_key_generate(token_key **ret);
token_key *token_key_free(token_key *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(token_key *, token_key_free);
#define _cleanup_token_key_ _cleanup_(token_key_freep)

bool token_key_has_private(const token_key *k);
const char *token_key_get_kid(const token_key *k);
/* A public-only copy (also for a key that is public already). */
int token_key_public_copy(const token_key *k, token_key **ret);
bool token_key_public_equal(const token_key *a, const token_key *b);

/* Private keys: PEM PKCS#8, written atomically with mode 0600. Anything
 * but a P-256 key is -EKEYREJECTED, text without a key -EBADMSG. */
int token_key_save_private_pem(const token_key *k, const char *path);
int token_key_load_private_pem(const char *path, token_key **ret);
int token_key_from_private_pem(const char *pem, size_t len, token_key **ret);
/* Public keys: PEM SubjectPublicKeyInfo. */
int token_key_get_public_pem(const token_key *k, char **ret);
int token_key_from_public_pem(const char *pem, size_t len, token_key **ret);

/* One public JWK, {"kty":"EC","crv":"P-256","x":...,"y":...,"kid":...,
 * "alg":"ES256","use":"sig"}. The import is strict; on failure
 * *ret_reason, if given, says why. */
int token_key_to_jwk(const token_key *k, char **ret);
int token_key_from_jwk(const char *json, size_t len, token_key **ret, const char **ret_reason);

/* --- key sets (JWKS) ----------------------------------------------------------- */

typedef struct token_keyset token_keyset;

int token_keyset_new(token_keyset **ret);
token_keyset *token_keyset_free(token_keyset *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(token_keyset *, token_keyset_free);
#define _cleanup_token_keyset_ _cleanup_(token_keyset_freep)

/* Adds a public copy of k; -EEXIST if its kid is taken, -E2BIG beyond
 * TOKEN_JWKS_MAX_KEYS. */
int token_keyset_add(token_keyset *s, const token_key *k);
size_t token_keyset_size(const token_keyset *s);
const token_key *token_keyset_find(const token_keyset *s, const char *kid);

/* {"keys":[JWK, ...]} as served at GET /idm/jwks. */
int token_keyset_to_jwks(const token_keyset *s, char **ret);
/* Every key must pass token_key_from_jwk(); duplicate kids, a missing
 * "keys" array and more than TOKEN_JWKS_MAX_KEYS keys are refused, all
 * with -EINVAL and a reason. len may be SIZE_MAX for strlen(). */
int token_keyset_from_jwks(const char *json, size_t len, token_keyset **ret, const char **ret_reason);

/* --- access tokens ---------------------------------------------------------------- */

typedef struct token_issue_params {
        const char *issuer;   /* iss, e.g. the domain's IdM URL */
        const char *subject;  /* sub, e.g. the device endpoint */
        const char *audience; /* aud, the service the token is for */
        const char *scope;    /* space-separated (RFC 6749 §3.3); NULL for none */
        usec_t lifetime;      /* exp = iat + lifetime; must be > 0 */
        usec_t now;           /* CLOCK_REALTIME; 0 for the current time */
        /* azp (OpenID Connect Core §2): the client the token was issued
         * through, e.g. the device a user logged in on; NULL for none */
        const char *authorized_party;
} token_issue_params;

/* A compact JWS signed with k (which must hold the private key), with kid
 * in the header and a random jti. */
int token_issue(const token_key *k, const token_issue_params *p, char **ret);

typedef struct token_verify_params {
        const char *issuer;   /* required: iss must equal it */
        const char *audience; /* required: aud must be or contain it */
        const char *scope;    /* space-separated, all required; NULL for none */
        usec_t now;           /* CLOCK_REALTIME; 0 for the current time */
} token_verify_params;

typedef struct token_claims token_claims;

token_claims *token_claims_free(token_claims *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(token_claims *, token_claims_free);
#define _cleanup_token_claims_ _cleanup_(token_claims_freep)

/* Another handle on the same (immutable) claims, for caches of verified
 * tokens; freed with token_claims_free() independently. */
int token_claims_dup(const token_claims *c, token_claims **ret);

const char *token_claims_get_issuer(const token_claims *c);
const char *token_claims_get_subject(const token_claims *c);
/* The space-separated scope, "" if none was granted. */
const char *token_claims_get_scope(const token_claims *c);
bool token_claims_has_scope(const token_claims *c, const char *scope);
/* NULL if the token has no jti. */
const char *token_claims_get_jti(const token_claims *c);
/* azp, NULL if the token has none. */
const char *token_claims_get_authorized_party(const token_claims *c);
const char *token_claims_get_kid(const token_claims *c);
/* CLOCK_REALTIME usec; iat is 0 if absent. */
usec_t token_claims_get_expiry(const token_claims *c);
usec_t token_claims_get_issued_at(const token_claims *c);

/* Checks signature (key chosen by kid), alg, exp/nbf/iat with
 * TOKEN_LEEWAY_USEC, iss, aud and scopes, in that order. */
int token_verify(const token_keyset *keys, const char *token, const token_verify_params *p,
                 token_claims **ret, const char **ret_reason);

/* --- replay cache --------------------------------------------------------------------- */

/* Remembers (issuer, jti) pairs until they expire. When full of live
 * entries it refuses new ones (-ENOBUFS) rather than forgetting one, as a
 * forgotten jti could be replayed. */
typedef struct token_replay_cache token_replay_cache;

int token_replay_cache_new(size_t max_entries, token_replay_cache **ret);
token_replay_cache *token_replay_cache_free(token_replay_cache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(token_replay_cache *, token_replay_cache_free);
#define _cleanup_token_replay_cache_ _cleanup_(token_replay_cache_freep)

/* 0 if recorded (until expiry), -EALREADY if the pair is there and not
 * expired, -ENOBUFS if full. */
int token_replay_cache_add(token_replay_cache *c, const char *issuer, const char *jti, usec_t expiry,
                           usec_t now);
size_t token_replay_cache_size(const token_replay_cache *c);

/* --- client assertions (RFC 7523 §2.2) -------------------------------------------------- */

/* Signed by the device: iss = sub = endpoint, aud = token_url, iat, exp =
 * iat + lifetime (at most TOKEN_ASSERTION_MAX_LIFETIME_USEC), random jti. */
int token_assertion_new(const token_key *device_key, const char *endpoint, const char *token_url,
                        usec_t lifetime, usec_t now, char **ret);

/* The endpoint an assertion claims to come from, UNVERIFIED: only for
 * finding the device's registered key, which token_assertion_verify() then
 * checks everything against. */
int token_assertion_peek_issuer(const char *assertion, char **ret);

/* Verifies an assertion against the device's registered public key: alg,
 * kid (if present, must be the key's), signature, iss = sub = endpoint,
 * aud contains token_url, exp present and not more than
 * TOKEN_ASSERTION_MAX_LIFETIME_USEC (+ leeway) ahead, nbf/iat, jti
 * present. Only then is the jti recorded in cache (required), so that a
 * second use within its lifetime is -EALREADY. */
int token_assertion_verify(const token_key *device_key, const char *assertion, const char *endpoint,
                           const char *token_url, token_replay_cache *cache, usec_t now,
                           token_claims **ret, const char **ret_reason);
