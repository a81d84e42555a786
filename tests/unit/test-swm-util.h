/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* For the software manager's suites and helpers: a package server on
 * lib/h2-server that serves one package at /pkg/<sha256> with ETag, Range
 * and If-Range (lib/http-range), optionally slowly, and remembers what it
 * was asked; plus signed test packages. */

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "encoding.h"
#include "h2-server.h"
#include "http-range.h"
#include "sha256.h"
#include "sign.h"
#include "time-util.h"

typedef struct swm_pkg_server {
        sd_event *event;
        H2Server *server;
        uint16_t port;

        uint8_t *data;                  /* what is served */
        size_t size;
        char sha256[SHA256_HEX_SIZE];   /* of data, names the path */
        char path[128];
        char etag[SHA256_HEX_SIZE + 2];

        size_t chunk;                   /* 0: everything at once */
        usec_t interval;                /* between chunks */
        bool ignore_range;              /* answer 200 with everything */
        int fail_status;                /* answer this error instead */

        unsigned requests;
        FILE *log;                      /* one line per request, if set */
        char last_range[64];            /* "" when the last request had none */
        char last_if_range[96];

        /* The one streaming response. */
        H2Request *active;
        size_t pos, end;
        sd_event_source *timer;
} swm_pkg_server;

static inline void swm_pkg_server_stop_stream(swm_pkg_server *s) {
        s->timer = sd_event_source_disable_unref(s->timer);
        s->active = h2_request_unref(s->active);
}

static inline int swm_pkg_on_tick(sd_event_source *src, uint64_t usec, void *userdata) {
        swm_pkg_server *s = userdata;
        size_t n;

        if (!s->active || h2_request_is_closed(s->active)) {
                swm_pkg_server_stop_stream(s);
                return 0;
        }
        /* Stay below the server's bound on queued bytes: wait for the peer. */
        if (h2_request_get_queued(s->active) > 256 * 1024)
                return event_reset_time_relative(s->event, &s->timer, USEC_PER_MSEC, swm_pkg_on_tick, s,
                                                 "pkg-tick");
        n = MIN(s->chunk ?: 64 * 1024, s->end - s->pos);
        if (n > 0 && h2_request_write(s->active, s->data + s->pos, n) < 0) {
                swm_pkg_server_stop_stream(s);
                return 0;
        }
        s->pos += n;
        if (s->pos >= s->end) {
                (void) h2_request_end(s->active);
                swm_pkg_server_stop_stream(s);
                return 0;
        }
        return event_reset_time_relative(s->event, &s->timer, s->interval, swm_pkg_on_tick, s, "pkg-tick");
}

static inline void swm_pkg_on_close(H2Request *req, int error, void *userdata) {
        swm_pkg_server *s = userdata;

        if (s->active == req)
                swm_pkg_server_stop_stream(s);
}

static inline int swm_pkg_handler(H2Request *req, void *userdata) {
        swm_pkg_server *s = userdata;
        const char *range = h2_request_get_header(req, "range");
        const char *if_range = h2_request_get_header(req, "if-range");
        char length[32], content_range[96];
        http_range rg = {};
        http_range_result res = HTTP_RANGE_NONE;
        int status = 200;

        if (!streq(h2_request_get_path(req), s->path))
                return h2_request_respond_error(req, 404, "no such package");
        s->requests++;
        snprintf(s->last_range, sizeof(s->last_range), "%s", range ?: "");
        snprintf(s->last_if_range, sizeof(s->last_if_range), "%s", if_range ?: "");
        if (s->log) {
                fprintf(s->log, "GET range=%s if-range=%s\n", range ?: "", if_range ?: "");
                fflush(s->log);
        }
        if (s->fail_status)
                return h2_request_respond_error(req, s->fail_status, "told to fail");
        if (!s->ignore_range && http_if_range_match(if_range, s->etag))
                res = http_range_parse(range, s->size, &rg);
        if (res == HTTP_RANGE_UNSATISFIABLE) {
                snprintf(content_range, sizeof(content_range), "bytes */%zu", s->size);
                return h2_request_respond(req, 416,
                                          (const H2Header[]) { { "content-range", content_range },
                                                               { "etag", s->etag } },
                                          2, NULL, 0);
        }
        if (res == HTTP_RANGE_SATISFIABLE) {
                status = 206;
                s->pos = rg.first;
                s->end = rg.last + 1;
        } else {
                s->pos = 0;
                s->end = s->size;
        }
        snprintf(length, sizeof(length), "%zu", s->end - s->pos);
        snprintf(content_range, sizeof(content_range), "bytes %zu-%zu/%zu", s->pos, s->end - 1, s->size);
        swm_pkg_server_stop_stream(s);
        if (h2_request_start_response(req, status,
                                      (const H2Header[]) { { "etag", s->etag },
                                                           { "content-length", length },
                                                           { "content-range", content_range } },
                                      status == 206 ? 3 : 2) < 0)
                return -EIO;
        s->active = h2_request_ref(req);
        (void) h2_request_set_close_handler(req, swm_pkg_on_close, s);
        return event_reset_time_relative(s->event, &s->timer, 0, swm_pkg_on_tick, s, "pkg-tick");
}

/* Serves a copy of data; listens on 127.0.0.1, over TLS when tls is set. */
static inline int swm_pkg_server_start_tls(swm_pkg_server *s, sd_event *e, const void *data, size_t size,
                                           SSL_CTX *tls) {
        uint8_t d[SHA256_DIGEST_SIZE];
        int r;

        *s = (swm_pkg_server) { .event = e };
        s->data = malloc(size ?: 1);
        if (!s->data)
                return -ENOMEM;
        memcpy(s->data, data, size);
        s->size = size;
        sha256_buffer(data, size, d);
        sha256_to_hex(d, s->sha256);
        snprintf(s->path, sizeof(s->path), "/pkg/%s", s->sha256);
        snprintf(s->etag, sizeof(s->etag), "\"%s\"", s->sha256);
        r = h2_server_new(e, NULL, tls, &s->server);
        if (r < 0)
                return r;
        h2_server_set_request_handler(s->server, swm_pkg_handler, s);
        r = h2_server_listen(s->server, "127.0.0.1", 0);
        if (r < 0)
                return r;
        s->port = (uint16_t) h2_server_get_port(s->server);
        return 0;
}

static inline int swm_pkg_server_start(swm_pkg_server *s, sd_event *e, const void *data, size_t size) {
        return swm_pkg_server_start_tls(s, e, data, size, NULL);
}

static inline void swm_pkg_server_done(swm_pkg_server *s) {
        swm_pkg_server_stop_stream(s);
        s->server = h2_server_free(s->server);
        free(s->data);
        s->data = NULL;
}

/* "#!/bin/sh" script of exactly size bytes (padded with a comment) that
 * runs body. */
static inline char *swm_make_script(const char *body, size_t size) {
        size_t head = strlen("#!/bin/sh\n") + strlen(body) + 3;
        char *s;

        if (size < head + 1)
                size = head + 1;
        s = malloc(size + 1);
        if (!s)
                return NULL;
        snprintf(s, size + 1, "#!/bin/sh\n%s\n#", body);
        memset(s + strlen(s), 'x', size - strlen(s) - 1);
        s[size - 1] = '\n';
        s[size] = '\0';
        return s;
}

/* A hyperty descriptor for data signed by key, served at path. extra (may
 * be NULL; consumed) is merged in (e.g. constraints). */
static inline json_t *swm_make_descriptor(const char *name, const void *data, size_t size, const sign_key *key,
                                          const char *path, json_t *extra) {
        uint8_t d[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE];
        char hex[SHA256_HEX_SIZE];
        _cleanup_free_ char *sig64 = NULL, *pub = NULL;
        json_t *o;

        sha256_buffer(data, size, d);
        if (sign_digest(key, d, sig) < 0 || base64url_encode(sig, sizeof(sig), &sig64) < 0 ||
            sign_key_get_public_base64url(key, &pub) < 0)
                return NULL;
        o = json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s, s:s, s:s}", "type", "hyperty", "objectName", name,
                      "version", "1.0.0", "hypertyType", "context", "sourcePackageURL", path, "sha256",
                      sha256_to_hex(d, hex), "signature", sig64, "publisher", pub);
        if (o && extra)
                (void) json_object_update(o, extra);
        json_decref(extra);
        return o;
}
