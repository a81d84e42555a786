/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "h2-client.h"
#include "jwks-cache.h"
#include "log.h"
#include "registration.h"
#include "sha256.h"
#include "tls.h"

typedef struct verified {
        uint8_t digest[SHA256_DIGEST_SIZE];
        token_claims *claims; /* NULL: free slot */
} verified;

struct jwks_waiter {
        jwks_cache *cache;
        jwks_cache_ready_t fn;
        void *userdata;
        jwks_waiter *next, *prev;
};

struct jwks_cache {
        sd_event *event;
        char *domain;
        registration_url url;
        SSL_CTX *tls;
        usec_t refresh_usec, min_refetch_usec;

        token_keyset *keys;
        unsigned n_fetches;

        H2Client *client;
        H2ClientRequest *fetch;
        usec_t last_fetch; /* CLOCK_MONOTONIC, start or end of the last fetch; 0: never */
        sd_event_source *timer;

        jwks_waiter *waiters;
        unsigned n_waiters;
        sd_event_source *notify;

        verified verified[JWKS_CACHE_MAX_VERIFIED];
        size_t verified_next;
        unsigned n_cache_hits;
};

static void verified_flush(jwks_cache *c) {
        for (size_t i = 0; i < JWKS_CACHE_MAX_VERIFIED; i++)
                c->verified[i].claims = token_claims_free(c->verified[i].claims);
}

static int start_fetch(jwks_cache *c);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        jwks_cache *c = userdata;

        (void) start_fetch(c);
        return 0;
}

static void schedule(jwks_cache *c, usec_t after) {
        int r;

        r = sd_event_source_set_time_relative(c->timer, after);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to schedule the next fetch of the domain's key set: %m");
}

static void waiter_unlink(jwks_waiter *w) {
        jwks_cache *c = w->cache;

        if (w->prev)
                w->prev->next = w->next;
        else
                c->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        c->n_waiters--;
        free(w);
}

static int on_notify(sd_event_source *s, void *userdata) {
        jwks_cache *c = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        /* Waiters that came during a fetch wait for its end. */
        if (c->fetch)
                return 0;
        /* A waiter may add new waiters (which then wait for the next
         * round): only call the ones there now. */
        for (unsigned n = c->n_waiters; n > 0 && c->waiters; n--) {
                jwks_waiter *w = c->waiters;
                jwks_cache_ready_t fn = w->fn;
                void *ud = w->userdata;

                waiter_unlink(w);
                fn(c, ud);
        }
        return 0;
}

static void notify_waiters(jwks_cache *c) {
        int r;

        if (!c->waiters)
                return;
        r = sd_event_source_set_enabled(c->notify, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to wake those waiting for the domain's key set: %m");
}

static void on_fetch_complete(H2ClientRequest *req, int error, void *userdata) {
        jwks_cache *c = userdata;
        _cleanup_token_keyset_ token_keyset *keys = NULL;
        const char *reason = NULL;
        const uint8_t *body;
        size_t size = 0;
        int status, r;

        status = error == 0 ? h2_client_request_get_status(req) : 0;
        body = h2_client_request_get_body(req, &size);
        c->fetch = h2_client_request_unref(c->fetch);
        /* The rate limit counts from the end too: a slow fetch must not let
         * the requests that waited for it start the next one at once. */
        c->last_fetch = now(CLOCK_MONOTONIC);

        if (error < 0)
                log_warning_errno(error, "Failed to fetch the domain's key set, keeping %zu known keys: %m",
                                  c->keys ? token_keyset_size(c->keys) : 0);
        else if (status != 200)
                log_warning("Failed to fetch the domain's key set: HTTP %d, keeping %zu known keys", status,
                            c->keys ? token_keyset_size(c->keys) : 0);
        else {
                r = token_keyset_from_jwks((const char *) body, size, &keys, &reason);
                if (r < 0)
                        log_warning_errno(r, "The domain's key set is invalid (%s), keeping %zu known keys",
                                          strna(reason), c->keys ? token_keyset_size(c->keys) : 0);
        }

        if (keys) {
                log_debug("Fetched the domain's key set: %zu keys", token_keyset_size(keys));
                token_keyset_free(c->keys);
                c->keys = TAKE_PTR(keys);
                /* A key may be gone: tokens are checked again. */
                verified_flush(c);
                c->n_fetches++;
                schedule(c, c->refresh_usec);
        } else
                schedule(c, c->min_refetch_usec);

        notify_waiters(c);
}

static int start_fetch(jwks_cache *c) {
        static const H2ClientRequestCallbacks cb = { .on_complete = on_fetch_complete };
        static const H2Header headers[] = { { "accept", "application/jwk-set+json, application/json" } };
        int r;

        if (c->fetch)
                return 0;
        /* Never called from the client's own callbacks (timer, server
         * handlers, waiters run deferred), so dropping it here is safe. */
        if (c->client && !h2_client_is_usable(c->client))
                c->client = h2_client_unref(c->client);
        if (!c->client) {
                H2ClientConfig config;

                h2_client_config_init(&config);
                config.request_timeout_usec = JWKS_CACHE_FETCH_TIMEOUT_USEC;
                config.connect_timeout_usec = JWKS_CACHE_FETCH_TIMEOUT_USEC;
                config.max_response_body = TOKEN_JWKS_MAX_SIZE;
                r = h2_client_new(c->event, c->url.host, c->url.port, c->tls, NULL, &config, NULL, c,
                                  &c->client);
                if (r < 0) {
                        schedule(c, c->min_refetch_usec);
                        return log_warning_errno(r, "Failed to connect to the domain for its key set: %m");
                }
        }
        c->last_fetch = now(CLOCK_MONOTONIC);
        r = h2_client_request(c->client, "GET", "/idm/jwks", headers, ELEMENTSOF(headers), NULL, 0, 0, &cb, c,
                              &c->fetch);
        if (r < 0) {
                schedule(c, c->min_refetch_usec);
                return log_warning_errno(r, "Failed to request the domain's key set: %m");
        }
        /* The refresh timer is re-armed when the fetch ends. */
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        return 0;
}

/* May a fetch start now? Bounds what unknown kids (forged tokens) cost. */
static bool fetch_due(const jwks_cache *c) {
        return c->last_fetch == 0 || now(CLOCK_MONOTONIC) >= c->last_fetch + c->min_refetch_usec;
}

int jwks_cache_new(sd_event *e, const jwks_cache_options *o, jwks_cache **ret) {
        _cleanup_(jwks_cache_freep) jwks_cache *c = NULL;
        const char *reason = NULL;
        int r;

        if (!e || !o || !o->url || !o->domain || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(e);
        r = registration_url_parse(o->url, &c->url, &reason);
        if (r < 0)
                return log_debug_errno(r, "Domain URL for the key set: %s", strna(reason));
        if (c->url.tls) {
                if (!o->ca_file)
                        return -EINVAL;
                r = tls_client_ctx_new(o->ca_file, &c->tls);
                if (r < 0)
                        return r;
        }
        c->domain = strdup(o->domain);
        if (!c->domain)
                return -ENOMEM;
        c->refresh_usec = o->refresh_usec ?: JWKS_CACHE_REFRESH_USEC_DEFAULT;
        c->min_refetch_usec = o->min_refetch_usec ?: JWKS_CACHE_MIN_REFETCH_USEC_DEFAULT;
        r = sd_event_add_time_relative(e, &c->timer, CLOCK_MONOTONIC, c->refresh_usec, 0, on_timer, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->timer, "jwks-refresh");
        r = sd_event_add_defer(e, &c->notify, on_notify, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->notify, SD_EVENT_OFF);
        *ret = TAKE_PTR(c);
        return 0;
}

jwks_cache *jwks_cache_free(jwks_cache *c) {
        if (!c)
                return NULL;
        while (c->waiters)
                waiter_unlink(c->waiters);
        if (c->fetch)
                (void) h2_client_request_cancel(c->fetch);
        h2_client_request_unref(c->fetch);
        h2_client_unref(c->client);
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->notify);
        if (c->tls)
                SSL_CTX_free(c->tls);
        verified_flush(c);
        token_keyset_free(c->keys);
        free(c->domain);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

int jwks_cache_start(jwks_cache *c) {
        return start_fetch(c);
}

bool jwks_cache_is_ready(const jwks_cache *c) {
        return c && c->keys;
}

size_t jwks_cache_get_n_keys(const jwks_cache *c) {
        return c && c->keys ? token_keyset_size(c->keys) : 0;
}

unsigned jwks_cache_get_n_fetches(const jwks_cache *c) {
        return c ? c->n_fetches : 0;
}

unsigned jwks_cache_get_n_cache_hits(const jwks_cache *c) {
        return c ? c->n_cache_hits : 0;
}

/* Every space-separated scope in want is granted. */
static bool has_scopes(const token_claims *claims, const char *want) {
        while (want && *want) {
                size_t l = strcspn(want, " ");
                _cleanup_free_ char *one = strndup(want, l);

                if (!one || (l > 0 && !token_claims_has_scope(claims, one)))
                        return false;
                want += l;
                want += strspn(want, " ");
        }
        return true;
}

static verified *verified_find(jwks_cache *c, const uint8_t digest[static SHA256_DIGEST_SIZE]) {
        for (size_t i = 0; i < JWKS_CACHE_MAX_VERIFIED; i++)
                if (c->verified[i].claims && CRYPTO_memcmp(c->verified[i].digest, digest, SHA256_DIGEST_SIZE) == 0)
                        return &c->verified[i];
        return NULL;
}

int jwks_cache_verify(jwks_cache *c, const char *token, const char *scope, const token_claims **ret,
                      const char **ret_reason) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        const char *reason = NULL;
        verified *v;
        int r;

        if (!c || !token || !ret_reason)
                return -EINVAL;
        r = sha256_buffer(token, strlen(token), digest);
        if (r < 0)
                return r;
        v = c->keys ? verified_find(c, digest) : NULL;
        if (v && token_claims_get_expiry(v->claims) + TOKEN_LEEWAY_USEC <= now(CLOCK_REALTIME))
                /* Expired since: token_verify() below says so. */
                v->claims = token_claims_free(v->claims);
        else if (v) {
                c->n_cache_hits++;
                if (!has_scopes(v->claims, scope)) {
                        *ret_reason = "missing scope";
                        return -EPERM;
                }
                if (ret)
                        *ret = v->claims;
                return 0;
        }
        if (!c->keys) {
                if (c->fetch)
                        goto busy;
                if (fetch_due(c) && start_fetch(c) >= 0 && c->fetch)
                        goto busy;
                *ret_reason = "the domain's key set is not available yet";
                return -ENODATA;
        }
        r = token_verify(c->keys, token,
                         &(token_verify_params) { .issuer = c->domain, .audience = c->domain }, &claims,
                         &reason);
        if (r == -ENOKEY) {
                /* A key the domain added since we fetched (rotation)? Ask
                 * once; refuse if we asked a moment ago. */
                if (c->fetch)
                        goto busy;
                if (fetch_due(c) && start_fetch(c) >= 0 && c->fetch)
                        goto busy;
        }
        if (r < 0) {
                *ret_reason = reason;
                return r;
        }
        /* Cached whatever the scope asked for now: the next request may ask
         * for another. */
        v = &c->verified[c->verified_next];
        c->verified_next = (c->verified_next + 1) % JWKS_CACHE_MAX_VERIFIED;
        token_claims_free(v->claims);
        memcpy(v->digest, digest, SHA256_DIGEST_SIZE);
        v->claims = TAKE_PTR(claims);
        if (!has_scopes(v->claims, scope)) {
                *ret_reason = "missing scope";
                return -EPERM;
        }
        if (ret)
                *ret = v->claims;
        return 0;

busy:
        *ret_reason = "waiting for the domain's key set";
        return -EBUSY;
}

int jwks_cache_wait(jwks_cache *c, jwks_cache_ready_t fn, void *userdata, jwks_waiter **ret) {
        jwks_waiter *w;

        if (!c || !fn)
                return -EINVAL;
        if (c->n_waiters >= JWKS_CACHE_MAX_WAITERS)
                return -EBUSY;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (jwks_waiter) { .cache = c, .fn = fn, .userdata = userdata, .next = c->waiters };
        if (c->waiters)
                c->waiters->prev = w;
        c->waiters = w;
        c->n_waiters++;
        if (!c->fetch)
                notify_waiters(c);
        if (ret)
                *ret = w;
        return 0;
}

jwks_waiter *jwks_waiter_cancel(jwks_waiter *w) {
        if (w)
                waiter_unlink(w);
        return NULL;
}
