/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The public half of the key that signed the seed tokens; the private half
 * was thrown away. Time is fixed at the seeds' iat, so the valid seed stays
 * valid and every run is deterministic. */
static const char jwks[] =
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
        "\"x\":\"pJJ6w7nZuLedPTMwlDpVlNlYpTcjX2RjNTVke-y5_4k\","
        "\"y\":\"BM7TCb5-bqnbYtZdLnEh0UiZUBX-y9Heunu7MplCwvw\","
        "\"kid\":\"M4pbsF8Xhq3vdBwOuDkwh4GuRnvTDVVgK8xtwkNdGTo\",\"alg\":\"ES256\",\"use\":\"sig\"}]}";
#define NOW ((usec_t) 1800000000 * USEC_PER_SEC)

static token_keyset *keys;

static void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Tokens: parsing and verification never crash, always give a reason when
 * they refuse, and what they accept carries the claims they promise.
 * The same bytes as a JWKS or JWK: whatever is accepted exports and
 * re-imports to the same document. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        token_verify_params vp = {
                .issuer = "https://idm.example.org",
                .audience = "https://registry.example.org",
                .scope = "msg:write",
                .now = NOW,
        };
        _cleanup_token_replay_cache_ token_replay_cache *cache = NULL;
        _cleanup_token_keyset_ token_keyset *set = NULL, *again = NULL;
        _cleanup_token_claims_ token_claims *c = NULL;
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_free_ char *s = NULL, *iss = NULL, *out = NULL, *out2 = NULL;
        const char *reason = NULL;
        int r;

        if (!keys && (token_keyset_from_jwks(jwks, SIZE_MAX, &keys, NULL) < 0 || token_keyset_size(keys) != 1))
                abort();

        s = strndup((const char *) data, size);
        if (!s)
                return 0;

        r = token_verify(keys, s, &vp, &c, &reason);
        if (r < 0 ? !reason : (!token_claims_get_subject(c) || !token_claims_has_scope(c, "msg:write") ||
                               token_claims_get_expiry(c) + TOKEN_LEEWAY_USEC < NOW))
                abort();
        c = token_claims_free(c);

        if (token_assertion_peek_issuer(s, &iss) >= 0 && !*iss)
                abort();
        if (token_replay_cache_new(4, &cache) < 0)
                abort();
        reason = NULL;
        r = token_assertion_verify(token_keyset_find(keys, "M4pbsF8Xhq3vdBwOuDkwh4GuRnvTDVVgK8xtwkNdGTo"), s,
                                   "urn:dev:ep:sensor-0042", "https://idm.example.org/idm/token", cache, NOW, &c,
                                   &reason);
        if (r < 0 ? !reason : token_replay_cache_size(cache) != 1)
                abort();
        c = token_claims_free(c);

        if (token_keyset_from_jwks((const char *) data, size, &set, &reason) >= 0) {
                if (token_keyset_to_jwks(set, &out) < 0 || token_keyset_from_jwks(out, SIZE_MAX, &again, NULL) < 0 ||
                    token_keyset_size(again) != token_keyset_size(set) || token_keyset_to_jwks(again, &out2) < 0 ||
                    !streq(out, out2))
                        abort();
                out = mfree(out);
        }
        if (token_key_from_jwk((const char *) data, size, &k, &reason) >= 0) {
                if (token_key_has_private(k) || token_key_to_jwk(k, &out) < 0)
                        abort();
        }
        return 0;
}
