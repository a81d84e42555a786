/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The domain's Identity Management: it holds the domain's ES256 signing
 * key, issues access tokens and lets the other services check them.
 *
 *   POST /idm/token   OAuth 2.0 client credentials (RFC 6749 §4.4):
 *                     devices authenticate with a JWT client assertion
 *                     signed by their P-256 key (RFC 7523 §2.2), the
 *                     admin with the configured credential; the
 *                     password grant (RFC 6749 §4.3) for the domain's
 *                     users, through a claimed device (scope "user")
 *   GET  /idm/jwks    the public key set (RFC 7517)
 *
 * Tokens have iss = aud = the domain name and carry scopes: "admin",
 * "runtime" (a device acting for its own runtime) and "peer" (reading a
 * peer's local resource directory). A device token's subject is its
 * endpoint name, an admin token's "admin".
 *
 * The signing key is generated on first start into
 * <state_dir>/idm-key.pem (0600) and reused after restarts, so tokens
 * issued before stay valid. docs/protocol.md and docs/idm.md have the
 * details. */

#include <stdbool.h>

#include "h2-server.h"
#include "macro.h"
#include "router.h"
#include "time-util.h"
#include "token-cache.h"
#include "token.h"

#define IDM_KEY_FILE_NAME "idm-key.pem"
#define IDM_SCOPE_ADMIN "admin"
#define IDM_SCOPE_RUNTIME "runtime"
#define IDM_SCOPE_PEER "peer"
#define IDM_SCOPE_USER "user"
#define IDM_ADMIN_SUBJECT "admin"
#define IDM_TOKEN_LIFETIME_USEC (1 * USEC_PER_HOUR)
/* Device authentications per assertion lifetime (5 min), see docs/idm.md. */
#define IDM_REPLAY_CACHE_SIZE 4096
/* Verified access tokens remembered (services/token-cache.h). */
#define IDM_VERIFY_CACHE_SIZE TOKEN_CACHE_DEFAULT_SIZE

typedef struct idm idm;

/* What the IdM needs to know of a device: its registered P-256 public key
 * (a JWK or PEM, in *ret_public_key, to be freed) and whether an admin
 * claimed it. -ENOENT for an unknown endpoint. */
typedef int (*idm_device_lookup_t)(const char *endpoint, char **ret_public_key, bool *ret_claimed, void *userdata);

/* domain: the domain name, issuer and audience of every token. Loads or
 * creates the signing key in state_dir. */
int idm_new(const char *state_dir, const char *domain, idm **ret);
idm *idm_free(idm *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(idm *, idm_free);
#define _cleanup_idm_ _cleanup_(idm_freep)

void idm_set_device_lookup(idm *i, idm_device_lookup_t lookup, void *userdata);

/* The password grant's check of a user (services/users.h): 0 when right,
 * -EACCES for a wrong name or password, -EBUSY after too many failures
 * with *ret_retry_after_sec. Without one, every user login is refused. */
typedef int (*idm_password_check_t)(const char *username, const char *password, unsigned *ret_retry_after_sec,
                                    void *userdata);
void idm_set_password_check(idm *i, idm_password_check_t check, void *userdata);
/* The admin's client_secret; copied. NULL: no admin tokens. */
int idm_set_admin_credential(idm *i, const char *credential);

int idm_add_routes(idm *i, router *r);

const char *idm_get_domain(const idm *i);
/* The URL device assertions must name as their audience:
 * "https://<domain>/idm/token". */
const char *idm_get_token_url(const idm *i);
const token_keyset *idm_get_keyset(const idm *i);

/* Issues an access token directly (tools, tests, other services). */
int idm_issue(idm *i, const char *subject, const char *scope, usec_t lifetime, char **ret);

/* Checks "Authorization: Bearer <access token>": ES256 signed by the
 * domain's key, iss and aud = the domain name, not expired, the scope
 * present. On success 0 and the claims (subject = device endpoint or admin
 * name). On failure -EACCES (401: missing/invalid/expired) or -EPERM (403:
 * valid but scope missing), with a static reason; -ENOMEM. */
int idm_check_bearer(idm *i, H2Request *req, const char *scope, token_claims **ret_claims,
                     const char **ret_reason);

/* How the cache of verified tokens behind idm_check_bearer() fares. */
token_cache_stats idm_get_verify_cache_stats(const idm *i);
