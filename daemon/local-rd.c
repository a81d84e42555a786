/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "h2-server.h"
#include "local-rd.h"
#include "log.h"
#include "rd-acl.h"
#include "senml.h"
#include "tls.h"

#define RESOURCES_PREFIX "/rd/resources"
/* Write to the HTTP/2 layer while less than this waits there; the rest
 * waits in the stream's own queue, where the oldest can be dropped. */
#define STREAM_HIGH_WATER (64u * 1024u)
#define STREAM_LOW_WATER (16u * 1024u)
/* Tokens are checked with this much leeway (jwks-cache), streams end as late. */
#define STREAM_EXPIRY_LEEWAY_USEC (30ULL * USEC_PER_SEC)
/* Refusals logged per window; the rest are counted and summed up. */
#define REFUSAL_LOG_BURST 20u
#define REFUSAL_LOG_WINDOW_USEC (10 * USEC_PER_SEC)
#define RETRY_AFTER_SEC "30"

typedef struct resource {
        char *address;
        char *reporter;
        bool actuator;
        json_t *acl;
        json_t *value;
        struct resource *next, *prev;
} resource;

typedef struct stream {
        local_rd *rd;
        H2Request *req;
        char *resource;
        char *to;
        char **queue; /* ring of LOCAL_RD_STREAM_MAX_QUEUED lines */
        size_t q_head, q_len;
        uint64_t dropped;
        bool ended; /* the resource was withdrawn or the token ran out; waiting for the close */
        char *subject;
        sd_event_source *expiry; /* the token that opened it runs out */
        struct stream *next, *prev;
} stream;

typedef struct pending {
        local_rd *rd;
        H2Request *req;
        jwks_waiter *waiter;
} pending;

struct local_rd {
        sd_event *event;
        H2Server *server;
        char *domain;
        char *endpoint;
        jwks_cache *jwks;
        resource *resources;
        size_t n_resources;
        stream *streams;
        uint64_t next_id;
        local_rd_actuation_handler_t actuation;
        void *actuation_userdata;
        usec_t refusal_window_start;
        unsigned refusals_in_window;
        uint64_t refusals_suppressed;
};

#define _cleanup_json_ _cleanup_(json_decrefp)

/* --- resources ------------------------------------------------------------------ */

static resource *find_resource(const local_rd *rd, const char *address) {
        for (resource *x = rd->resources; x; x = x->next)
                if (streq(x->address, address))
                        return x;
        return NULL;
}

static resource *resource_free(resource *x) {
        if (!x)
                return NULL;
        free(x->address);
        free(x->reporter);
        json_decref(x->acl);
        json_decref(x->value);
        free(x);
        return NULL;
}

/* --- refusals ------------------------------------------------------------------- */

static void log_refusal(local_rd *rd, H2Request *req, const char *subject, int status, const char *reason) {
        usec_t t = now(CLOCK_MONOTONIC);

        if (t >= rd->refusal_window_start + REFUSAL_LOG_WINDOW_USEC) {
                if (rd->refusals_suppressed > 0)
                        log_notice("Local RD: %" PRIu64 " more refusals were not logged.", rd->refusals_suppressed);
                rd->refusal_window_start = t;
                rd->refusals_in_window = 0;
                rd->refusals_suppressed = 0;
        }
        if (rd->refusals_in_window >= REFUSAL_LOG_BURST) {
                rd->refusals_suppressed++;
                return;
        }
        rd->refusals_in_window++;
        /* The peer is known by the address it claims and the subject its
         * token proves; the header is logged only once it is valid. */
        const char *from = h2_request_get_header(req, "rethink-from");
        log_notice("Local RD: refused %s %s from %s (subject %s): %d %s", h2_request_get_method(req),
                   h2_request_get_path(req), from && rt_address_is_valid(from) ? from : "(no valid rethink-from)",
                   subject ?: "(unauthenticated)", status, reason);
}

static int refuse(local_rd *rd, H2Request *req, const char *subject, int status, const char *reason) {
        log_refusal(rd, req, subject, status, reason);
        return h2_request_respond_error(req, status, reason);
}

static int respond_json(H2Request *req, int status, json_t *j, const H2Header *extra, size_t n_extra) {
        _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        H2Header h[4] = { { "content-type", "application/json" }, { "cache-control", "no-store" } };
        size_t n = 2;

        if (!text)
                return -ENOMEM;
        for (size_t i = 0; i < n_extra && n < ELEMENTSOF(h); i++)
                h[n++] = extra[i];
        return h2_request_respond(req, status, h, n, text, strlen(text));
}

static int respond_error_with(H2Request *req, int status, const char *description, const H2Header *extra,
                              size_t n_extra) {
        _cleanup_json_ json_t *j = json_pack("{s:i,s:s}", "code", status, "description", description);

        if (!j)
                return -ENOMEM;
        return respond_json(req, status, j, extra, n_extra);
}

/* --- streams -------------------------------------------------------------------- */

static stream *stream_free(stream *s) {
        if (!s)
                return NULL;
        if (s->prev)
                s->prev->next = s->next;
        else if (s->rd->streams == s)
                s->rd->streams = s->next;
        if (s->next)
                s->next->prev = s->prev;
        for (size_t i = 0; i < s->q_len; i++)
                free(s->queue[(s->q_head + i) % LOCAL_RD_STREAM_MAX_QUEUED]);
        free(s->queue);
        sd_event_source_disable_unref(s->expiry);
        h2_request_unref(s->req);
        free(s->resource);
        free(s->to);
        free(s->subject);
        free(s);
        return NULL;
}

static char *notification_line(local_rd *rd, const char *type, const char *from, const char *to, json_t *body) {
        _cleanup_json_ json_t *m = NULL;
        char *text;

        m = json_pack("{s:I,s:s,s:s,s:s,s:O}", "id", (json_int_t) ++rd->next_id, "type", type, "from", from, "to",
                      to, "body", body);
        if (!m)
                return NULL;
        text = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return NULL;
        /* One message per line: replace the NUL with the newline. */
        size_t n = strlen(text);
        char *line = realloc(text, n + 2);
        if (!line) {
                free(text);
                return NULL;
        }
        line[n] = '\n';
        line[n + 1] = '\0';
        return line;
}

static int stream_write_line(stream *s, const char *line) {
        return h2_request_write(s->req, line, strlen(line));
}

/* Hands queued lines to the HTTP/2 layer while it holds little, first the
 * notice of what was dropped. Lines that do not fit wait. */
static void stream_flush(stream *s) {
        int r;

        while (h2_request_get_queued(s->req) < STREAM_HIGH_WATER) {
                if (s->dropped > 0) {
                        _cleanup_free_ char *line = NULL;
                        _cleanup_json_ json_t *body =
                                json_pack("{s:s,s:I}", "attribute", "dropped", "value", (json_int_t) s->dropped);

                        line = body ? notification_line(s->rd, "execute", s->resource, s->to, body) : NULL;
                        if (!line)
                                return;
                        r = stream_write_line(s, line);
                        if (r < 0)
                                return;
                        log_info("Local RD: told %s that %" PRIu64 " notifications of %s were dropped.", s->to,
                                 s->dropped, s->resource);
                        s->dropped = 0;
                        continue;
                }
                if (s->q_len == 0)
                        return;
                char **slot = &s->queue[s->q_head];
                r = stream_write_line(s, *slot);
                if (r < 0)
                        return; /* -ENOBUFS: the drain handler comes back; -ENOTCONN: closing */
                free(*slot);
                *slot = NULL;
                s->q_head = (s->q_head + 1) % LOCAL_RD_STREAM_MAX_QUEUED;
                s->q_len--;
        }
}

static int stream_push(stream *s, char *line) {
        if (s->q_len == LOCAL_RD_STREAM_MAX_QUEUED) {
                /* A reader slower than the resource loses the oldest values,
                 * never the newest, and is told how many. */
                free(s->queue[s->q_head]);
                s->q_head = (s->q_head + 1) % LOCAL_RD_STREAM_MAX_QUEUED;
                s->q_len--;
                s->dropped++;
        }
        s->queue[(s->q_head + s->q_len) % LOCAL_RD_STREAM_MAX_QUEUED] = line;
        s->q_len++;
        stream_flush(s);
        return 0;
}

static int stream_notify(stream *s, const resource *x) {
        _cleanup_json_ json_t *body = json_pack("{s:s,s:O}", "resource", x->address, "value", x->value);
        char *line;

        line = body ? notification_line(s->rd, "update", x->address, s->to, body) : NULL;
        if (!line)
                return -ENOMEM;
        return stream_push(s, line);
}

static void on_stream_drain(H2Request *req, void *userdata) {
        stream *s = userdata;

        if (!s->ended)
                stream_flush(s);
}

static void on_stream_close(H2Request *req, int error, void *userdata) {
        stream *s = userdata;

        log_debug("Local RD: stream of %s to %s closed (%d).", s->resource, s->to, error);
        stream_free(s);
}

static void stream_end(stream *s) {
        if (s->ended)
                return;
        stream_flush(s);
        s->ended = true;
        /* The close handler frees the stream once the stream is gone. */
        (void) h2_request_end(s->req);
}

/* A subscription lasts no longer than the token that opened it: the
 * subscriber opens it again with a fresh one (the ACL and the key set are
 * checked again then). */
static int on_stream_expiry(sd_event_source *es, uint64_t usec, void *userdata) {
        stream *s = userdata;

        log_info("Local RD: the token of %s's subscription to %s ran out; ending it.", s->subject, s->resource);
        stream_end(s);
        return 0;
}

static unsigned count_streams(local_rd *rd, const char *subject) {
        unsigned n = 0;

        for (stream *s = rd->streams; s; s = s->next)
                n += !s->ended && (!subject || streq(s->subject, subject));
        return n;
}

static int start_stream(local_rd *rd, H2Request *req, resource *x, const char *from, const char *subject,
                        usec_t expiry) {
        static const H2Header headers[] = { { "content-type", "application/x-ndjson" },
                                            { "cache-control", "no-store" } };
        stream *s;
        int r;

        /* Each stream holds up to LOCAL_RD_STREAM_MAX_QUEUED values for a
         * slow reader: the streams are bounded, per subject and in all. */
        if (count_streams(rd, NULL) >= LOCAL_RD_MAX_STREAMS || count_streams(rd, subject) >= LOCAL_RD_MAX_STREAMS_PER_SUBJECT)
                return refuse(rd, req, subject, 503, "too many subscription streams");
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->rd = rd;
        s->queue = calloc(LOCAL_RD_STREAM_MAX_QUEUED, sizeof(char *));
        s->resource = strdup(x->address);
        s->to = strdup(from);
        s->subject = strdup(subject);
        if (!s->queue || !s->resource || !s->to || !s->subject) {
                stream_free(s);
                return -ENOMEM;
        }
        s->req = h2_request_ref(req);
        s->next = rd->streams;
        if (rd->streams)
                rd->streams->prev = s;
        rd->streams = s;

        r = h2_request_start_response(req, 200, headers, ELEMENTSOF(headers));
        if (r >= 0)
                r = h2_request_set_close_handler(req, on_stream_close, s);
        if (r >= 0)
                r = h2_request_set_drain_handler(req, STREAM_LOW_WATER, on_stream_drain, s);
        if (r >= 0 && expiry > 0)
                r = sd_event_add_time(rd->event, &s->expiry, CLOCK_REALTIME, expiry + STREAM_EXPIRY_LEEWAY_USEC,
                                      USEC_PER_SEC, on_stream_expiry, s);
        if (r < 0) {
                (void) h2_request_set_close_handler(req, NULL, NULL);
                stream_free(s);
                return r;
        }
        log_debug("Local RD: %s subscribed to %s.", from, x->address);
        /* The current value first, so a subscriber needs no separate read. */
        if (x->value)
                (void) stream_notify(s, x);
        return 0;
}

static void end_streams_of(local_rd *rd, const char *address) {
        for (stream *s = rd->streams, *n; s; s = n) {
                n = s->next;
                if (streq(s->resource, address))
                        stream_end(s);
        }
}

/* --- requests --------------------------------------------------------------------- */

static int handle_list(local_rd *rd, H2Request *req, const char *subject) {
        _cleanup_json_ json_t *o = NULL, *a = json_array();

        if (!a)
                return -ENOMEM;
        for (resource *x = rd->resources; x; x = x->next) {
                unsigned access = rd_acl_lookup(x->acl, subject);
                json_t *e;

                if (!(access & RD_ACCESS_READ))
                        continue;
                e = json_pack("{s:s,s:s,s:b,s:s}", "resource", x->address, "reporter", x->reporter, "actuator",
                              x->actuator, "access", (access & RD_ACCESS_WRITE) ? "rw" : "r");
                if (!e || (x->value && json_object_set(e, "value", x->value) < 0) || json_array_append_new(a, e) < 0)
                        return -ENOMEM;
        }
        o = json_pack("{s:O}", "resources", a);
        if (!o)
                return -ENOMEM;
        return respond_json(req, 200, o, NULL, 0);
}

static int handle_put(local_rd *rd, H2Request *req, resource *x, const char *subject, const char *from) {
        _cleanup_json_ json_t *value = NULL;
        _cleanup_free_ char *desc = NULL;
        const char *reason = NULL;
        const uint8_t *body;
        size_t size = 0;
        int r;

        body = h2_request_get_body(req, &size);
        r = senml_parse(body, size, &value, &reason);
        if (r < 0) {
                if (asprintf(&desc, "body: SenML: %s", reason) < 0)
                        return -ENOMEM;
                return refuse(rd, req, subject, r == -EMSGSIZE ? 413 : 400, desc);
        }
        if (!rd->actuation)
                return refuse(rd, req, subject, 503, "no actuation handler");
        r = rd->actuation(rd, x->address, x->reporter, from, value, rd->actuation_userdata);
        if (r < 0) {
                log_notice_errno(r, "Local RD: update of %s from %s could not be handed to %s: %m", x->address, from,
                                 x->reporter);
                return h2_request_respond_error(req, 503, "the reporter is not reachable");
        }
        log_debug("Local RD: update of %s from %s (subject %s) handed to %s.", x->address, from, subject,
                  x->reporter);
        return h2_request_respond_error(req, 202, "handed to the reporter");
}

/* The request is authenticated: subject is the token's sub. */
static int dispatch(local_rd *rd, H2Request *req, const char *subject, usec_t expiry) {
        static const H2Header allow_get[] = { { "allow", "GET" } };
        static const H2Header allow_get_put[] = { { "allow", "GET, PUT" } };
        _cleanup_free_ char *address = NULL;
        const char *method = h2_request_get_method(req), *path = h2_request_get_path(req),
                   *query = h2_request_get_query(req), *from = h2_request_get_header(req, "rethink-from");
        resource *x;
        unsigned access;

        if (!from)
                return refuse(rd, req, subject, 400, "header 'rethink-from': missing");
        if (!rt_address_is_valid(from))
                return refuse(rd, req, subject, 400, "header 'rethink-from': not a valid address");

        if (streq(path, RESOURCES_PREFIX)) {
                if (!streq(method, "GET")) {
                        log_refusal(rd, req, subject, 405, "method not allowed");
                        return respond_error_with(req, 405, "method not allowed", allow_get, 1);
                }
                return handle_list(rd, req, subject);
        }
        if (strncmp(path, RESOURCES_PREFIX "/", strlen(RESOURCES_PREFIX "/")) != 0)
                return refuse(rd, req, subject, 404, "no such route");

        if (asprintf(&address, "ctxt://%s/%s", rd->domain, path + strlen(RESOURCES_PREFIX "/")) < 0)
                return -ENOMEM;
        if (!rt_address_is_valid(address))
                return refuse(rd, req, subject, 400, "path: not a valid ctxt:// resource path");
        x = find_resource(rd, address);
        if (!x)
                return refuse(rd, req, subject, 404, "no such resource");

        access = rd_acl_lookup(x->acl, subject);
        if (streq(method, "GET")) {
                if (!(access & RD_ACCESS_READ))
                        return refuse(rd, req, subject, 403, "the resource's ACL does not let the subject read");
                if (query && streq(query, "subscribe=1"))
                        return start_stream(rd, req, x, from, subject, expiry);
                if (query && *query)
                        return refuse(rd, req, subject, 400, "query: only subscribe=1 is known");
                if (!x->value)
                        return refuse(rd, req, subject, 404, "the resource has no value yet");
                _cleanup_free_ char *text = json_dumps(x->value, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (!text)
                        return -ENOMEM;
                return h2_request_respond(req, 200,
                                          (const H2Header[]) { { "content-type", "application/senml+json" },
                                                               { "cache-control", "no-store" } },
                                          2, text, strlen(text));
        }
        if (streq(method, "PUT")) {
                if (!x->actuator) {
                        log_refusal(rd, req, subject, 405, "the resource is a sensor");
                        return respond_error_with(req, 405, "the resource is a sensor: it cannot be updated",
                                                  allow_get, 1);
                }
                if (!(access & RD_ACCESS_WRITE))
                        return refuse(rd, req, subject, 403, "the resource's ACL does not let the subject update");
                return handle_put(rd, req, x, subject, from);
        }
        log_refusal(rd, req, subject, 405, "method not allowed");
        return respond_error_with(req, 405, "method not allowed", x->actuator ? allow_get_put : allow_get, 1);
}

static int unauthorized(local_rd *rd, H2Request *req, const char *reason) {
        _cleanup_free_ char *challenge = NULL;

        log_refusal(rd, req, NULL, 401, reason);
        /* reason is static text of ours (lib/token), never the token. */
        if (asprintf(&challenge, "Bearer realm=\"rethink-agent\", scope=\"" LOCAL_RD_SCOPE
                                 "\", error=\"invalid_token\", error_description=\"%s\"",
                     reason) < 0)
                return -ENOMEM;
        return respond_error_with(req, 401, reason, (const H2Header[]) { { "www-authenticate", challenge } }, 1);
}

static int process(local_rd *rd, H2Request *req, bool waited);

static void pending_free(pending *p) {
        if (!p)
                return;
        jwks_waiter_cancel(p->waiter);
        h2_request_unref(p->req);
        free(p);
}

static void on_pending_close(H2Request *req, int error, void *userdata) {
        pending_free(userdata);
}

static void on_jwks_ready(jwks_cache *c, void *userdata) {
        pending *p = userdata;
        int r;

        p->waiter = NULL;
        (void) h2_request_set_close_handler(p->req, NULL, NULL);
        r = process(p->rd, p->req, true);
        if (r < 0 && !h2_request_is_closed(p->req))
                (void) h2_request_respond_error(p->req, 500, "internal error");
        pending_free(p);
}

static int wait_for_keys(local_rd *rd, H2Request *req) {
        pending *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->rd = rd;
        p->req = h2_request_ref(req);
        r = jwks_cache_wait(rd->jwks, on_jwks_ready, p, &p->waiter);
        if (r >= 0)
                r = h2_request_set_close_handler(req, on_pending_close, p);
        if (r < 0) {
                pending_free(p);
                if (r == -EBUSY) {
                        log_refusal(rd, req, NULL, 503, "too many requests waiting for the domain's key set");
                        return respond_error_with(req, 503, "too many requests waiting for the domain's key set",
                                                  (const H2Header[]) { { "retry-after", RETRY_AFTER_SEC } }, 1);
                }
                return r;
        }
        return 0;
}

static int process(local_rd *rd, H2Request *req, bool waited) {
        const token_claims *claims = NULL;
        const char *auth = h2_request_get_header(req, "authorization"), *reason = NULL;
        int r;

        if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7])
                return unauthorized(rd, req, "a bearer token is required");
        /* The scope is checked here, not by the cache, so that the refusal
         * can name the subject the token proves. */
        r = jwks_cache_verify(rd->jwks, auth + 7, NULL, &claims, &reason);
        if (r == -EBUSY && !waited)
                return wait_for_keys(rd, req);
        if (r == -EBUSY || r == -ENODATA) {
                log_refusal(rd, req, NULL, 503, reason);
                return respond_error_with(req, 503, "the domain's key set is not available, try again later",
                                          (const H2Header[]) { { "retry-after", RETRY_AFTER_SEC } }, 1);
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return unauthorized(rd, req, reason ?: "invalid token");
        if (!token_claims_has_scope(claims, LOCAL_RD_SCOPE))
                return refuse(rd, req, token_claims_get_subject(claims), 403,
                              "the token does not grant the scope \"" LOCAL_RD_SCOPE "\"");
        return dispatch(rd, req, token_claims_get_subject(claims), token_claims_get_expiry(claims));
}

static int on_request(H2Request *req, void *userdata) {
        return process(userdata, req, false);
}

/* --- the directory ---------------------------------------------------------------- */

int local_rd_new(sd_event *e, const local_rd_options *o, local_rd **ret) {
        _cleanup_(local_rd_freep) local_rd *rd = NULL;
        _cleanup_ssl_ctx_ SSL_CTX *tls = NULL;
        H2ServerConfig config;
        struct in6_addr a6;
        int r;

        if (!e || !o || !o->address || !*o->address || !o->domain || !o->jwks || !ret)
                return -EINVAL;
        if (!o->cleartext) {
                if (!o->certificate || !o->key)
                        return -EINVAL;
                r = tls_server_ctx_new(o->certificate, o->key, &tls);
                if (r < 0)
                        return log_debug_errno(r, "Failed to load the Local RD's certificate %s and key %s: %m",
                                               o->certificate, o->key);
        }
        rd = calloc(1, sizeof(*rd));
        if (!rd)
                return -ENOMEM;
        rd->event = sd_event_ref(e);
        rd->jwks = o->jwks;
        rd->domain = strdup(o->domain);
        if (!rd->domain)
                return -ENOMEM;

        h2_server_config_init(&config);
        /* A SenML pack is all a request ever carries. Bodies are read
         * before the token is checked, so what strangers can make the
         * device hold is bounded by connections x streams x body. */
        config.max_request_body = SENML_MAX_SIZE;
        config.max_connections = LOCAL_RD_MAX_CONNECTIONS;
        config.max_concurrent_streams = LOCAL_RD_MAX_STREAMS_PER_CONNECTION;
        r = h2_server_new(e, &config, tls, &rd->server);
        if (r < 0)
                return r;
        h2_server_set_request_handler(rd->server, on_request, rd);
        r = h2_server_listen(rd->server, o->address, o->port);
        if (r < 0)
                return log_debug_errno(r, "Failed to listen on %s port %u: %m", o->address, o->port);

        bool v6 = inet_pton(AF_INET6, o->address, &a6) == 1;
        if (asprintf(&rd->endpoint, "%s://%s%s%s:%d", o->cleartext ? "http" : "https", v6 ? "[" : "", o->address,
                     v6 ? "]" : "", h2_server_get_port(rd->server)) < 0) {
                rd->endpoint = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(rd);
        return 0;
}

local_rd *local_rd_free(local_rd *rd) {
        if (!rd)
                return NULL;
        /* Close handlers free the streams and the requests waiting for keys. */
        rd->server = h2_server_free(rd->server);
        while (rd->streams)
                stream_free(rd->streams);
        while (rd->resources) {
                resource *x = rd->resources;
                rd->resources = x->next;
                resource_free(x);
        }
        free(rd->domain);
        free(rd->endpoint);
        sd_event_unref(rd->event);
        free(rd);
        return NULL;
}

const char *local_rd_get_endpoint(const local_rd *rd) {
        return rd ? rd->endpoint : NULL;
}

int local_rd_get_port(const local_rd *rd) {
        return rd ? h2_server_get_port(rd->server) : -EINVAL;
}

size_t local_rd_get_n_resources(const local_rd *rd) {
        return rd ? rd->n_resources : 0;
}

static bool address_is_ours(const local_rd *rd, const char *address) {
        _cleanup_rt_address_ rt_address *a = NULL;

        if (rt_address_parse(address, &a, NULL) < 0)
                return false;
        return rt_address_get_scheme(a) == RT_ADDRESS_CTXT && streq(rt_address_get_authority(a), rd->domain);
}

int local_rd_add_resource(local_rd *rd, const char *address, const char *reporter, bool actuator, json_t *acl) {
        const char *reason = NULL;
        resource *x;
        char *rep;

        if (!rd || !address || !reporter || !rt_address_is_valid(reporter))
                return -EINVAL;
        if (!address_is_ours(rd, address))
                return log_debug_errno(-EINVAL, "Local RD: %s is not a ctxt:// address of %s.", address,
                                       rd->domain);
        if (acl && rd_acl_check(acl, &reason) < 0)
                return log_debug_errno(-EINVAL, "Local RD: ACL of %s: %s", address, reason);

        rep = strdup(reporter);
        if (!rep)
                return -ENOMEM;
        x = find_resource(rd, address);
        if (!x) {
                if (rd->n_resources >= LOCAL_RD_MAX_RESOURCES) {
                        free(rep);
                        return -E2BIG;
                }
                x = calloc(1, sizeof(*x));
                if (!x || !(x->address = strdup(address))) {
                        free(x);
                        free(rep);
                        return -ENOMEM;
                }
                x->next = rd->resources;
                if (rd->resources)
                        rd->resources->prev = x;
                rd->resources = x;
                rd->n_resources++;
        } else if (!streq(x->reporter, reporter))
                x->value = (json_decref(x->value), NULL);
        free(x->reporter);
        x->reporter = rep;
        x->actuator = actuator;
        json_decref(x->acl);
        x->acl = acl ? json_incref(acl) : json_object();
        if (!x->acl)
                return -ENOMEM;
        log_debug("Local RD: offering %s (%s) of %s.", address, actuator ? "actuator" : "sensor", reporter);
        return 0;
}

int local_rd_remove_resources_of(local_rd *rd, const char *reporter) {
        int n = 0;

        if (!rd || !reporter)
                return -EINVAL;
        for (resource *x = rd->resources, *next; x; x = next) {
                next = x->next;
                if (!streq(x->reporter, reporter))
                        continue;
                end_streams_of(rd, x->address);
                if (x->prev)
                        x->prev->next = x->next;
                else
                        rd->resources = x->next;
                if (x->next)
                        x->next->prev = x->prev;
                rd->n_resources--;
                resource_free(x);
                n++;
        }
        if (n > 0)
                log_debug("Local RD: withdrew %d resources of %s.", n, reporter);
        return n;
}

int local_rd_publish(local_rd *rd, const char *address, json_t *senml, const char **ret_reason) {
        const char *reason = NULL;
        resource *x;
        int r;

        if (!rd || !address || !senml)
                return -EINVAL;
        x = find_resource(rd, address);
        if (!x) {
                if (ret_reason)
                        *ret_reason = "the resource is not offered";
                return -ENOENT;
        }
        r = senml_check(senml, &reason);
        if (r < 0) {
                if (ret_reason)
                        *ret_reason = reason;
                return r;
        }
        json_decref(x->value);
        x->value = json_incref(senml);
        for (stream *s = rd->streams; s; s = s->next)
                if (!s->ended && streq(s->resource, address))
                        (void) stream_notify(s, x);
        return 0;
}

void local_rd_set_actuation_handler(local_rd *rd, local_rd_actuation_handler_t handler, void *userdata) {
        rd->actuation = handler;
        rd->actuation_userdata = userdata;
}
