/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What both protostubs (messaging.c, p2p.c) need around libhyperty: the
 * target the agent names in RETHINK_STUB_TARGET, the device token read
 * from the agent over the bus, NDJSON line splitting and percent-encoding.
 * Header-only because each protostub source is a program of its own. */

#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "address.h"
#include "hyperty.h"
#include "log.h"
#include "macro.h"
#include "message.h"
#include "registration.h"
#include "time-util.h"
#include "tls.h"

/* A token is re-read this long before it expires at the latest, and at
 * 3/4 of its lifetime at the earliest. */
#define STUB_TOKEN_MARGIN_USEC (60 * USEC_PER_SEC)
#define STUB_TOKEN_RETRY_USEC (10 * USEC_PER_SEC)
#define STUB_LINE_MAX (RT_MESSAGE_MAX_SIZE_DEFAULT + 1)

/* --- the target ---------------------------------------------------------------------------- */

/* URLs are parsed by registration_url_parse() (daemon/registration.h):
 * "https://host[:port]" or, on loopback only, "http://host[:port]" (h2c);
 * host numeric or "localhost", since lib/h2-client resolves no names. */
typedef registration_url stub_url;

/* RETHINK_STUB_TARGET as JSON; a missing or malformed variable is logged
 * naming it. */
static inline int stub_target_load(json_t **ret) {
        const char *s = getenv("RETHINK_STUB_TARGET");
        json_error_t err;
        json_t *j;

        if (!s)
                return log_error_errno(EINVAL, "RETHINK_STUB_TARGET is not set.");
        j = json_loads(s, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(j)) {
                json_decref(j);
                return log_error_errno(EINVAL, "RETHINK_STUB_TARGET: expected a JSON object.");
        }
        *ret = j;
        return 0;
}

/* A string member of the target; NULL and logged when required and missing. */
static inline const char *stub_target_string(json_t *target, const char *key, bool required) {
        json_t *v = json_object_get(target, key);

        if (v && !json_is_string(v)) {
                log_error("RETHINK_STUB_TARGET: field '%s': expected a string.", key);
                return NULL;
        }
        if (!v && required)
                log_error("RETHINK_STUB_TARGET: field '%s': missing.", key);
        return json_string_value(v);
}

/* The endpoint in field (an https:// URL, or http:// to loopback) and,
 * for TLS, a client context with the CA in "caFile". Logs naming the field. */
static inline int stub_target_endpoint(json_t *target, const char *field, registration_url *ret_url,
                                       SSL_CTX **ret_tls) {
        const char *url = stub_target_string(target, field, true), *ca = stub_target_string(target, "caFile", false);
        const char *reason = NULL;
        int r;

        if (!url)
                return -EINVAL;
        r = registration_url_parse(url, ret_url, &reason);
        if (r < 0)
                return log_error_errno(r, "RETHINK_STUB_TARGET: field '%s': %s.", field, reason);
        *ret_tls = NULL;
        if (!ret_url->tls)
                return 0;
        if (!ca)
                return log_error_errno(EINVAL, "RETHINK_STUB_TARGET: field 'caFile': missing, %s needs it.", url);
        r = tls_client_ctx_new(ca, ret_tls);
        if (r < 0)
                return log_error_errno(r, "RETHINK_STUB_TARGET: field 'caFile': cannot load %s: %m", ca);
        return 0;
}

/* --- the device token, from the agent --------------------------------------------------------- */

typedef struct stub_token stub_token;
typedef void (*stub_token_handler_t)(stub_token *t, int code, void *userdata);

struct stub_token {
        hyperty *hyperty;
        sd_event *event;
        char *value;
        usec_t expiry;           /* CLOCK_MONOTONIC */
        bool asking;
        sd_event_source *refresh;
        stub_token_handler_t handler;
        void *userdata;
};

static inline const char *stub_token_get(const stub_token *t) {
        return t->value && now(CLOCK_MONOTONIC) < t->expiry ? t->value : NULL;
}

static inline void stub_token_forget(stub_token *t) {
        if (t->value)
                explicit_bzero_safe(t->value, strlen(t->value));
        free(t->value);
        t->value = NULL;
}

static inline void stub_token_done(stub_token *t) {
        stub_token_forget(t);
        t->refresh = sd_event_source_disable_unref(t->refresh);
}

static inline int stub_token_ask(stub_token *t);

static inline int stub_token_on_refresh(sd_event_source *s, uint64_t usec, void *userdata) {
        stub_token *t = userdata;

        (void) stub_token_ask(t);
        return 0;
}

static inline void stub_token_on_response(hyperty *h, const rt_message *resp, void *userdata) {
        stub_token *t = userdata;
        json_t *v = rt_message_get_value(resp);
        const char *tok = json_string_value(json_object_get(v, "accessToken"));
        json_int_t expires_in = json_integer_value(json_object_get(v, "expiresIn"));
        int code = rt_message_get_code(resp);
        usec_t lifetime, at;
        char *copy;

        t->asking = false;
        if (code != 200 || !tok || expires_in <= 0) {
                log_warning("The agent gave no token (%d%s%s).", code, rt_message_get_description(resp) ? ": " : "",
                            strempty(rt_message_get_description(resp)));
                /* A refresh that failed is tried again while the old
                 * token still serves. */
                if (stub_token_get(t))
                        (void) event_reset_time_relative(t->event, &t->refresh, STUB_TOKEN_RETRY_USEC,
                                                         stub_token_on_refresh, t, "stub-token-refresh");
                if (t->handler)
                        t->handler(t, code == 200 ? 502 : code, t->userdata);
                return;
        }
        copy = strdup(tok);
        if (!copy) {
                log_oom();
                if (t->handler)
                        t->handler(t, 500, t->userdata);
                return;
        }
        stub_token_forget(t);
        t->value = copy;
        lifetime = (usec_t) expires_in * USEC_PER_SEC;
        t->expiry = now(CLOCK_MONOTONIC) + lifetime;
        /* Re-read at 3/4 of the lifetime, but never later than the margin
         * before it runs out, so a request never leaves with a token that
         * expires on the way. */
        at = lifetime * 3 / 4;
        if (lifetime > STUB_TOKEN_MARGIN_USEC)
                at = MIN(at, lifetime - STUB_TOKEN_MARGIN_USEC);
        (void) event_reset_time_relative(t->event, &t->refresh, MAX(at, USEC_PER_SEC), stub_token_on_refresh, t,
                                         "stub-token-refresh");
        log_info("Got the device token from the agent (valid %llds).", (long long) expires_in);
        if (t->handler)
                t->handler(t, 200, t->userdata);
}

/* Asks the agent; the handler follows with 200 or the error code. */
static inline int stub_token_ask(stub_token *t) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        int r;

        if (t->asking)
                return 0;
        /* docs/protostubs.md: body.resource must be an address, so the
         * token is named by the attribute. */
        body = json_pack("{s:s}", "attribute", "token");
        if (!body)
                return log_oom();
        r = hyperty_send(t->hyperty, RT_MESSAGE_READ, NULL, hyperty_get_runtime(t->hyperty), body,
                         stub_token_on_response, t, NULL);
        if (r < 0)
                return log_debug_errno(r, "Cannot ask the agent for a token yet: %m");
        t->asking = true;
        return 0;
}

/* --- NDJSON lines ------------------------------------------------------------------------------ */

typedef struct stub_lines {
        char *buf;
        size_t len;
        bool skipping;  /* in a line over STUB_LINE_MAX: dropped up to its end */
} stub_lines;

/* Calls deliver for each complete line; -EMSGSIZE for a line over
 * STUB_LINE_MAX. */
static inline int stub_lines_feed(stub_lines *l, const uint8_t *data, size_t size,
                                  void (*deliver)(const char *line, size_t len, void *userdata), void *userdata) {
        if (!l->buf) {
                l->buf = malloc(STUB_LINE_MAX);
                if (!l->buf)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < size; i++) {
                if (data[i] == '\n') {
                        if (l->len > 0 && !l->skipping)
                                deliver(l->buf, l->len, userdata);
                        l->len = 0;
                        l->skipping = false;
                        continue;
                }
                if (l->skipping)
                        continue;
                if (l->len >= STUB_LINE_MAX) {
                        /* One line too long costs that line, not the stream
                         * (which would be opened again and start with it). */
                        log_warning("Dropping a line longer than %u bytes.", (unsigned) STUB_LINE_MAX);
                        l->skipping = true;
                        l->len = 0;
                        continue;
                }
                l->buf[l->len++] = (char) data[i];
        }
        return 0;
}

/* --- misc -------------------------------------------------------------------------------------- */

/* Appends s percent-encoded (everything but RFC 3986 unreserved) to f. */
static inline void stub_fput_pct(FILE *f, const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~", *p))
                        fputc(*p, f);
                else
                        fprintf(f, "%%%02X", *p);
        }
}

/* A response from the address the request went to (a protostub may speak
 * for addresses outside the device), or only logged when the request was
 * itself a response (never answered). */
static inline void stub_answer(hyperty *h, const rt_message *request, int code, const char *description,
                               json_t *value) {
        _cleanup_rt_message_ rt_message *m = NULL;
        int r;

        if (rt_message_get_type(request) == RT_MESSAGE_RESPONSE) {
                log_debug("Dropping a response that could not be delivered (%d %s).", code, strna(description));
                return;
        }
        r = rt_message_new_response(request, NULL, code, description, value, &m);
        if (r >= 0)
                r = hyperty_send_message(h, m);
        if (r < 0)
                log_debug_errno(r, "Cannot answer message %llu: %m",
                                (unsigned long long) rt_message_get_id(request));
}
