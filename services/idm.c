/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fileio.h"
#include "id.h"
#include "idm.h"
#include "log.h"
#include "oauth-form.h"
#include "token-cache.h"

#define ASSERTION_TYPE_JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define DEVICE_KEY_MAX 4096

struct idm {
        char *domain;
        char *token_url;
        token_key *key;
        token_keyset *keyset;
        char *jwks;
        token_replay_cache *replay;
        token_cache *verified;
        char *admin_credential;
        idm_device_lookup_t lookup;
        void *lookup_userdata;
        idm_password_check_t password_check;
        void *password_userdata;
};

static int load_or_create_key(const char *state_dir, token_key **ret) {
        _cleanup_free_ char *path = NULL;
        _cleanup_token_key_ token_key *k = NULL;
        int r;

        if (asprintf(&path, "%s/%s", state_dir, IDM_KEY_FILE_NAME) < 0)
                return -ENOMEM;
        r = token_key_load_private_pem(path, &k);
        if (r >= 0) {
                *ret = TAKE_PTR(k);
                return 0;
        }
        if (r != -ENOENT)
                return log_error_errno(r, "Failed to load the IdM signing key %s: %m", path);

        r = token_key_generate(&k);
        if (r < 0)
                return log_error_errno(r, "Failed to generate the IdM signing key: %m");
        r = token_key_save_private_pem(k, path);
        if (r < 0)
                return log_error_errno(r, "Failed to save the IdM signing key to %s: %m", path);
        log_info("Generated the IdM signing key %s (kid %s).", path, token_key_get_kid(k));
        *ret = TAKE_PTR(k);
        return 0;
}

int idm_new(const char *state_dir, const char *domain, idm **ret) {
        _cleanup_idm_ idm *i = NULL;
        int r;

        if (!state_dir || !domain || !*domain || !ret)
                return -EINVAL;
        i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->domain = strdup(domain);
        if (!i->domain || asprintf(&i->token_url, "https://%s/idm/token", domain) < 0)
                return -ENOMEM;
        r = mkdir_p(state_dir, 0750);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", state_dir);
        r = load_or_create_key(state_dir, &i->key);
        if (r < 0)
                return r;
        r = token_keyset_new(&i->keyset);
        if (r < 0)
                return r;
        r = token_keyset_add(i->keyset, i->key);
        if (r < 0)
                return r;
        r = token_keyset_to_jwks(i->keyset, &i->jwks);
        if (r < 0)
                return r;
        r = token_replay_cache_new(IDM_REPLAY_CACHE_SIZE, &i->replay);
        if (r < 0)
                return r;
        r = token_cache_new(IDM_VERIFY_CACHE_SIZE, &i->verified);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(i);
        return 0;
}

static void drop_credential(idm *i) {
        if (i->admin_credential) {
                explicit_bzero_safe(i->admin_credential, strlen(i->admin_credential));
                free(i->admin_credential);
                i->admin_credential = NULL;
        }
}

idm *idm_free(idm *i) {
        if (!i)
                return NULL;
        drop_credential(i);
        free(i->domain);
        free(i->token_url);
        token_key_free(i->key);
        token_keyset_free(i->keyset);
        free(i->jwks);
        token_replay_cache_free(i->replay);
        token_cache_free(i->verified);
        free(i);
        return NULL;
}

void idm_set_device_lookup(idm *i, idm_device_lookup_t lookup, void *userdata) {
        i->lookup = lookup;
        i->lookup_userdata = userdata;
}

void idm_set_password_check(idm *i, idm_password_check_t check, void *userdata) {
        i->password_check = check;
        i->password_userdata = userdata;
}

int idm_set_admin_credential(idm *i, const char *credential) {
        char *c = NULL;

        if (!i)
                return -EINVAL;
        if (credential) {
                c = strdup(credential);
                if (!c)
                        return -ENOMEM;
        }
        drop_credential(i);
        i->admin_credential = c;
        return 0;
}

const char *idm_get_domain(const idm *i) {
        return i->domain;
}

const char *idm_get_token_url(const idm *i) {
        return i->token_url;
}

const token_keyset *idm_get_keyset(const idm *i) {
        return i->keyset;
}

int idm_issue(idm *i, const char *subject, const char *scope, usec_t lifetime, char **ret) {
        if (!i || !subject || !ret || lifetime == 0)
                return -EINVAL;
        return token_issue(i->key, &(token_issue_params) {
                                           .issuer = i->domain,
                                           .subject = subject,
                                           .audience = i->domain,
                                           .scope = scope,
                                           .lifetime = lifetime,
                                   },
                           ret);
}

/* Every space-separated item of scope granted; NULL or "" asks for none. */
static bool has_scopes(const token_claims *c, const char *scope) {
        for (const char *p = scope ?: ""; *p;) {
                size_t n = strcspn(p, " ");
                char one[64];

                if (n > 0) {
                        if (n >= sizeof(one))
                                return false;
                        memcpy(one, p, n);
                        one[n] = '\0';
                        if (!token_claims_has_scope(c, one))
                                return false;
                }
                p += n;
                p += *p == ' ';
        }
        return true;
}

token_cache_stats idm_get_verify_cache_stats(const idm *i) {
        return token_cache_get_stats(i ? i->verified : NULL);
}

int idm_check_bearer(idm *i, H2Request *req, const char *scope, token_claims **ret_claims,
                     const char **ret_reason) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        const char *h, *reason = NULL;
        int r;

        if (!i || !req)
                return -EINVAL;
        h = h2_request_get_header(req, "authorization");
        if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
                if (ret_reason)
                        *ret_reason = "missing bearer token";
                return -EACCES;
        }
        h += 7;
        while (*h == ' ')
                h++;

        /* A token verified before is known good until its exp (+ the
         * verifier's leeway); the scope is checked on every request, as
         * routes ask for different ones. */
        r = token_cache_get(i->verified, h, now(CLOCK_REALTIME), &claims);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                r = token_verify(i->keyset, h, &(token_verify_params) { .issuer = i->domain, .audience = i->domain },
                                 &claims, &reason);
                if (r < 0) {
                        if (ret_reason)
                                *ret_reason = reason ?: "invalid token";
                        return r == -ENOMEM ? r : -EACCES;
                }
                /* Without a cache entry the next request verifies again. */
                (void) token_cache_put(i->verified, h, claims, token_claims_get_expiry(claims) + TOKEN_LEEWAY_USEC);
        }
        if (!has_scopes(claims, scope)) {
                if (ret_reason)
                        *ret_reason = "missing scope";
                return -EPERM;
        }
        if (ret_claims)
                *ret_claims = TAKE_PTR(claims);
        return 0;
}

/* --- the token endpoint ------------------------------------------------------------ */

/* RFC 6749 §5.2 error, with the project's code/description beside it so
 * that every 4xx of the domain can be read the same way. */
static int respond_oauth_error(route_request *rr, int status, const char *error, const char *description) {
        json_t *o;
        int r;

        o = json_pack("{s:s, s:s, s:i, s:s}", "error", error, "error_description", description, "code", status,
                      "description", description);
        if (!o)
                return -ENOMEM;
        r = route_respond_json(rr, status,
                               o,
                               (const H2Header[]) { { "cache-control", "no-store" }, { "pragma", "no-cache" } }, 2);
        json_decref(o);
        return r;
}

/* Every item of requested among allowed; *ret the granted scope. */
static int grant_scope(const char *requested, const char *allowed, char **ret) {
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;

        if (!requested) {
                *ret = strdup(allowed);
                return *ret ? 0 : -ENOMEM;
        }
        copy = strdup(requested);
        if (!copy)
                return -ENOMEM;
        if (!*requested || requested[0] == ' ' || requested[strlen(requested) - 1] == ' ' || strstr(requested, "  "))
                return -EINVAL;
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                size_t n = strlen(t);
                bool found = false;

                for (const char *a = allowed; *a;) {
                        size_t m = strcspn(a, " ");

                        if (m == n && strncmp(a, t, n) == 0)
                                found = true;
                        a += m;
                        a += *a == ' ';
                }
                if (!found)
                        return -EINVAL;
        }
        *ret = strdup(requested);
        return *ret ? 0 : -ENOMEM;
}

static int respond_token(idm *i, route_request *rr, const char *subject, const char *scope) {
        _cleanup_free_ char *token = NULL;
        json_t *o;
        int r;

        r = idm_issue(i, subject, scope, IDM_TOKEN_LIFETIME_USEC, &token);
        if (r < 0)
                return log_error_errno(r, "Failed to issue a token for %s: %m", subject);
        o = json_pack("{s:s, s:s, s:I, s:s}", "access_token", token, "token_type", "Bearer", "expires_in",
                      (json_int_t) (IDM_TOKEN_LIFETIME_USEC / USEC_PER_SEC), "scope", scope);
        if (!o)
                return -ENOMEM;
        log_info("Issued an access token to %s with scope \"%s\".", subject, scope);
        r = route_respond_json(rr, 200, o,
                               (const H2Header[]) { { "cache-control", "no-store" }, { "pragma", "no-cache" } }, 2);
        json_decref(o);
        return r;
}

/* The endpoint names device management accepts (docs/protocol.md): 1-64
 * of [A-Za-z0-9._:-], first a letter or digit. Checked before the name,
 * still unverified, reaches the lookup or a log line. */
static bool endpoint_is_valid(const char *s) {
        size_t n;

        if (!s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9')))
                return false;
        for (n = 0; s[n]; n++)
                if (n >= 64 || !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
                                 (s[n] >= '0' && s[n] <= '9') || strchr("._:-", s[n])))
                        return false;
        return true;
}

static int load_device_key(const char *text, token_key **ret) {
        size_t n = strlen(text);

        if (n > 0 && text[0] == '{')
                return token_key_from_jwk(text, n, ret, NULL);
        return token_key_from_public_pem(text, n, ret);
}

static int token_for_device(idm *i, route_request *rr, const oauth_form *f) {
        const char *assertion_type = oauth_form_get(f, OAUTH_CLIENT_ASSERTION_TYPE),
                   *assertion = oauth_form_get(f, OAUTH_CLIENT_ASSERTION),
                   *client_id = oauth_form_get(f, OAUTH_CLIENT_ID), *reason = NULL;
        _cleanup_free_ char *endpoint = NULL, *public_key = NULL, *scope = NULL;
        _cleanup_token_key_ token_key *key = NULL;
        _cleanup_token_claims_ token_claims *claims = NULL;
        bool claimed = false;
        int r;

        if (!streq(assertion_type, ASSERTION_TYPE_JWT_BEARER))
                return respond_oauth_error(rr, 400, "invalid_request",
                                           "parameter 'client_assertion_type': expected " ASSERTION_TYPE_JWT_BEARER);
        if (!assertion || !*assertion)
                return respond_oauth_error(rr, 400, "invalid_request", "parameter 'client_assertion': missing");
        if (oauth_form_get(f, OAUTH_CLIENT_SECRET))
                return respond_oauth_error(rr, 400, "invalid_request",
                                           "use one client authentication: client_assertion or client_secret");

        r = token_assertion_peek_issuer(assertion, &endpoint);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return respond_oauth_error(rr, 401, "invalid_client", "malformed client assertion");
        if (!endpoint_is_valid(endpoint))
                return respond_oauth_error(rr, 401, "invalid_client", "unknown client");
        if (client_id && !streq(client_id, endpoint))
                return respond_oauth_error(rr, 401, "invalid_client", "client_id differs from the assertion's issuer");

        r = i->lookup ? i->lookup(endpoint, &public_key, &claimed, i->lookup_userdata) : -ENOENT;
        if (r == -ENOENT) {
                log_debug("Token request for unknown endpoint refused.");
                return respond_oauth_error(rr, 401, "invalid_client", "unknown client");
        }
        if (r < 0)
                return log_error_errno(r, "Failed to look up device %s: %m", endpoint);
        if (!public_key || strlen(public_key) > DEVICE_KEY_MAX || load_device_key(public_key, &key) < 0) {
                log_notice("Device %s has no usable P-256 key registered; no token.", endpoint);
                return respond_oauth_error(rr, 401, "invalid_client", "no P-256 key registered for the client");
        }

        r = token_assertion_verify(key, assertion, endpoint, i->token_url, i->replay, 0, &claims, &reason);
        if (r == -ENOMEM)
                return r;
        if (r == -ENOBUFS) {
                log_warning("Replay cache full: refusing device authentications for now.");
                return respond_oauth_error(rr, 503, "temporarily_unavailable", "replay cache full, retry later");
        }
        if (r < 0) {
                log_info("Client assertion of %s refused: %s", endpoint, strna(reason));
                return respond_oauth_error(rr, 401, "invalid_client", reason ?: "invalid client assertion");
        }
        if (!claimed) {
                log_info("Token refused to %s: device not claimed.", endpoint);
                return respond_oauth_error(rr, 403, "unauthorized_client", "device not claimed");
        }

        r = grant_scope(oauth_form_get(f, OAUTH_SCOPE), IDM_SCOPE_RUNTIME " " IDM_SCOPE_PEER, &scope);
        if (r == -EINVAL)
                return respond_oauth_error(rr, 400, "invalid_scope", "a device may ask for 'runtime' and 'peer' only");
        if (r < 0)
                return r;
        return respond_token(i, rr, endpoint, scope);
}

/* The admin authenticates with its credential as client_secret, in the
 * body or with HTTP Basic (RFC 6749 §2.3.1), client_id "admin". */
static int token_for_admin(idm *i, route_request *rr, const oauth_form *f, const char *basic_id,
                           const char *basic_secret) {
        const char *client_id = basic_id ?: oauth_form_get(f, OAUTH_CLIENT_ID),
                   *secret = basic_secret ?: oauth_form_get(f, OAUTH_CLIENT_SECRET);
        _cleanup_free_ char *scope = NULL;
        int r;

        if (!secret)
                return respond_oauth_error(rr, 401, "invalid_client",
                                           "missing client authentication (client_assertion or client_secret)");
        if (client_id && !streq(client_id, IDM_ADMIN_SUBJECT))
                return respond_oauth_error(rr, 401, "invalid_client", "unknown client");
        /* id_token_equal() never matches NULL: no credential, no admin. */
        if (!id_token_equal(secret, i->admin_credential)) {
                log_notice("Admin token request with a wrong credential refused.");
                return respond_oauth_error(rr, 401, "invalid_client", "invalid client credential");
        }
        r = grant_scope(oauth_form_get(f, OAUTH_SCOPE), IDM_SCOPE_ADMIN, &scope);
        if (r == -EINVAL)
                return respond_oauth_error(rr, 400, "invalid_scope", "the admin may ask for 'admin' only");
        if (r < 0)
                return r;
        return respond_token(i, rr, IDM_ADMIN_SUBJECT, scope);
}

/* The resource owner password grant (RFC 6749 §4.3) for the domain's end
 * users, only through a claimed device: the device shows its own access
 * token as the bearer credential, and the user's token names it in azp.
 * docs/users.md. */
static int token_for_user(idm *i, route_request *rr, const oauth_form *f) {
        const char *username = oauth_form_get(f, OAUTH_USERNAME), *password = oauth_form_get(f, OAUTH_PASSWORD),
                   *reason = NULL;
        _cleanup_token_claims_ token_claims *device = NULL;
        _cleanup_free_ char *scope = NULL, *subject = NULL, *token = NULL, *retry = NULL;
        unsigned retry_after = 0;
        json_t *o;
        int r;

        if (oauth_form_get(f, OAUTH_CLIENT_SECRET) || oauth_form_get(f, OAUTH_CLIENT_ASSERTION) ||
            oauth_form_get(f, OAUTH_CLIENT_ASSERTION_TYPE))
                return respond_oauth_error(rr, 400, "invalid_request",
                                           "the password grant takes the device's bearer token, no other client authentication");
        r = idm_check_bearer(i, route_request_get_request(rr), IDM_SCOPE_RUNTIME, &device, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                _cleanup_free_ char *d = NULL;

                if (asprintf(&d, "a claimed device's bearer token (scope 'runtime') is required: %s",
                             reason ?: "invalid token") < 0)
                        return -ENOMEM;
                return respond_oauth_error(rr, 401, "invalid_client", d);
        }
        if (!username || !*username)
                return respond_oauth_error(rr, 400, "invalid_request", "parameter 'username': missing");
        if (!password)
                return respond_oauth_error(rr, 400, "invalid_request", "parameter 'password': missing");
        r = grant_scope(oauth_form_get(f, OAUTH_SCOPE), IDM_SCOPE_USER, &scope);
        if (r == -EINVAL)
                return respond_oauth_error(rr, 400, "invalid_scope", "a user may ask for 'user' only");
        if (r < 0)
                return r;

        r = i->password_check ? i->password_check(username, password, &retry_after, i->password_userdata) : -EACCES;
        if (r == -EBUSY) {
                log_notice("Login of a user through %s refused: too many failed attempts.",
                           token_claims_get_subject(device));
                if (asprintf(&retry, "%u", retry_after) < 0)
                        return -ENOMEM;
                o = json_pack("{s:s, s:s, s:i, s:s}", "error", "invalid_grant", "error_description",
                              "too many failed attempts for this user, try again later", "code", 429, "description",
                              "too many failed attempts for this user, try again later");
                if (!o)
                        return -ENOMEM;
                r = route_respond_json(rr, 429, o,
                                       (const H2Header[]) { { "cache-control", "no-store" }, { "retry-after", retry } }, 2);
                json_decref(o);
                return r;
        }
        if (r == -EACCES) {
                log_info("Login of a user through %s refused: wrong name or password.", token_claims_get_subject(device));
                return respond_oauth_error(rr, 400, "invalid_grant", "wrong user name or password");
        }
        if (r < 0)
                return log_error_errno(r, "Failed to check a user's password: %m");

        if (asprintf(&subject, "user://%s/%s", i->domain, username) < 0)
                return -ENOMEM;
        r = token_issue(i->key, &(token_issue_params) {
                                        .issuer = i->domain,
                                        .subject = subject,
                                        .audience = i->domain,
                                        .scope = scope,
                                        .lifetime = IDM_TOKEN_LIFETIME_USEC,
                                        .authorized_party = token_claims_get_subject(device),
                                },
                        &token);
        if (r < 0)
                return log_error_errno(r, "Failed to issue a token for %s: %m", subject);
        o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "access_token", token, "token_type", "Bearer", "expires_in",
                      (json_int_t) (IDM_TOKEN_LIFETIME_USEC / USEC_PER_SEC), "scope", scope, "user", subject);
        if (!o)
                return -ENOMEM;
        log_info("Issued an access token to %s on device %s.", subject, token_claims_get_subject(device));
        r = route_respond_json(rr, 200, o,
                               (const H2Header[]) { { "cache-control", "no-store" }, { "pragma", "no-cache" } }, 2);
        json_decref(o);
        return r;
}

static bool is_form(const char *content_type) {
        size_t n = strlen("application/x-www-form-urlencoded");

        return content_type && strncasecmp(content_type, "application/x-www-form-urlencoded", n) == 0 &&
               (content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ');
}

static int on_token(route_request *rr, void *userdata) {
        idm *i = userdata;
        _cleanup_oauth_form_ oauth_form *f = NULL;
        _cleanup_free_ char *basic_id = NULL, *basic_secret = NULL;
        const char *reason = NULL, *grant, *authorization;
        const uint8_t *body;
        size_t size;
        int r;

        if (route_query_check_allowed(rr, (const char *const[]) { NULL }) < 0)
                return respond_oauth_error(rr, 400, "invalid_request", "no query parameters allowed");
        if (!is_form(h2_request_get_header(route_request_get_request(rr), "content-type")))
                return respond_oauth_error(rr, 400, "invalid_request",
                                           "content-type: expected application/x-www-form-urlencoded");
        body = route_request_get_body(rr, &size);
        r = oauth_form_parse((const char *) body, size, &f, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return respond_oauth_error(rr, 400, "invalid_request", reason ?: "malformed body");

        grant = oauth_form_get(f, OAUTH_GRANT_TYPE);
        if (!grant)
                return respond_oauth_error(rr, 400, "invalid_request", "parameter 'grant_type': missing");
        if (streq(grant, "password"))
                return token_for_user(i, rr, f);
        if (!streq(grant, "client_credentials"))
                return respond_oauth_error(rr, 400, "unsupported_grant_type",
                                           "parameter 'grant_type': only client_credentials and password are supported");

        authorization = h2_request_get_header(route_request_get_request(rr), "authorization");
        if (authorization) {
                r = oauth_basic_parse(authorization, &basic_id, &basic_secret, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r == -ENOENT)
                        return respond_oauth_error(rr, 401, "invalid_client",
                                                   "authorization: only Basic client authentication is accepted here");
                if (r < 0)
                        return respond_oauth_error(rr, 401, "invalid_client", reason ?: "malformed Basic credential");
                if (oauth_form_get(f, OAUTH_CLIENT_SECRET) || oauth_form_get(f, OAUTH_CLIENT_ASSERTION) ||
                    oauth_form_get(f, OAUTH_CLIENT_ASSERTION_TYPE))
                        return respond_oauth_error(rr, 400, "invalid_request",
                                                   "use one client authentication: Basic, client_secret or client_assertion");
                return token_for_admin(i, rr, f, basic_id, basic_secret);
        }
        if (oauth_form_get(f, OAUTH_CLIENT_ASSERTION_TYPE) || oauth_form_get(f, OAUTH_CLIENT_ASSERTION))
                return token_for_device(i, rr, f);
        return token_for_admin(i, rr, f, NULL, NULL);
}

static int on_jwks(route_request *rr, void *userdata) {
        idm *i = userdata;

        if (route_query_check_allowed(rr, (const char *const[]) { NULL }) < 0)
                return route_respond_error(rr, 400, "no query parameters allowed");
        route_request_mark_answered(rr);
        return h2_request_respond(route_request_get_request(rr), 200,
                                  (const H2Header[]) { { "content-type", "application/jwk-set+json" },
                                                       { "cache-control", "max-age=300" } },
                                  2, i->jwks, strlen(i->jwks));
}

static const route idm_routes[] = {
        { .method = "POST", .pattern = "/idm/token", .max_body = OAUTH_FORM_MAX_SIZE, .handler = on_token },
        { .method = "GET", .pattern = "/idm/jwks", .handler = on_jwks },
};

int idm_add_routes(idm *i, router *r) {
        return router_add(r, idm_routes, ELEMENTSOF(idm_routes), i);
}
