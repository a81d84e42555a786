/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "fileio.h"
#include "h2-client.h"
#include "id.h"
#include "log.h"
#include "registration-session.h"
#include "tls.h"
#include "token.h"

#define ASSERTION_LIFETIME_USEC (2 * USEC_PER_MINUTE)
#define REQUEST_TIMEOUT_USEC (30 * USEC_PER_SEC)
/* A stream that stayed up this long was a success: the backoff starts
 * over. Shorter ones keep growing it, so a stream the server ends at
 * once cannot make us reconnect in a tight loop. */
#define STREAM_HEALTHY_USEC (30 * USEC_PER_SEC)
#define LINE_MAX_BYTES (RT_MESSAGE_MAX_SIZE_DEFAULT + 1)

typedef enum step {
        STEP_TOKEN,
        STEP_SESSION,
        STEP_STREAM,
} step;

struct reg_session {
        sd_event *event;
        identity *id;
        gates *gates;
        gate_subscription *gate_sub, *mobility_sub;
        reg_session_message_handler_t message_handler;
        void *message_userdata;
        reg_session_state_handler_t state_handler;
        void *state_userdata;

        registration_url url;
        char *url_string;
        SSL_CTX *tls;
        char *runtime, *token_url;
        H2Client *client;
        bool drop_client;
        H2ClientRequest *req, *refresh_req;
        step req_step;
        backoff *backoff;
        sd_event_source *timer, *refresh_timer, *defer;

        reg_session_state state;
        bool started, gate_open;
        step next_step;

        char *token;
        usec_t token_expiry;    /* CLOCK_MONOTONIC */
        char *stream_path;
        char *messages_path;
        usec_t stream_since;
        char *line;
        size_t line_len;
        unsigned messages;
        char *last_error;
        int last_status;
};

static const char *const state_names[_REG_SESSION_STATE_MAX] = {
        [REG_SESSION_IDLE] = "idle",
        [REG_SESSION_TOKEN] = "token",
        [REG_SESSION_OPENING] = "opening",
        [REG_SESSION_STREAMING] = "streaming",
        [REG_SESSION_RETRY_WAIT] = "retry-wait",
};

const char *reg_session_state_to_string(reg_session_state s) {
        return s >= 0 && s < _REG_SESSION_STATE_MAX ? state_names[s] : NULL;
}

bool reg_session_domain_name_is_valid(const char *name) {
        _cleanup_free_ char *a = NULL;

        if (!name || !*name || strpbrk(name, "/?#@:"))
                return false;
        if (asprintf(&a, "runtime://%s/00000000-0000-4000-8000-000000000000", name) < 0)
                return false;
        return rt_address_is_valid(a);
}

static void set_state(reg_session *s, reg_session_state state, int status) {
        s->state = state;
        s->last_status = status;
        if (s->state_handler)
                s->state_handler(state, status, s->state_userdata);
}

static void set_last_error(reg_session *s, const char *fmt, ...) _printf_(2, 3);
static void set_last_error(reg_session *s, const char *fmt, ...) {
        va_list ap;
        char *e = NULL;

        va_start(ap, fmt);
        if (vasprintf(&e, fmt, ap) < 0)
                e = NULL;
        va_end(ap);
        free(s->last_error);
        s->last_error = e;
}

static const char *step_name(step st) {
        return st == STEP_TOKEN ? "token" : st == STEP_SESSION ? "session" : "stream";
}

static int on_timer(sd_event_source *es, uint64_t usec, void *userdata);

static int schedule(reg_session *s, step st, usec_t delay) {
        int r;

        s->next_step = st;
        r = event_reset_time_relative(s->event, &s->timer, delay, on_timer, s, "reg-session");
        if (r < 0)
                return log_error_errno(r, "Failed to arm the session timer: %m");
        return 0;
}

static void stop(reg_session *s) {
        s->defer = sd_event_source_disable_unref(s->defer);
        if (s->refresh_req) {
                (void) h2_client_request_cancel(s->refresh_req);
                s->refresh_req = h2_client_request_unref(s->refresh_req);
        }
        if (s->req) {
                (void) h2_client_request_cancel(s->req);
                s->req = h2_client_request_unref(s->req);
        }
        if (s->timer)
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        if (s->refresh_timer)
                (void) sd_event_source_set_enabled(s->refresh_timer, SD_EVENT_OFF);
        s->line_len = 0;
}

static void fail(reg_session *s, step st, int error, int status) {
        usec_t delay = REGISTRATION_RETRY_MAX_USEC;
        char buf[FORMAT_TIMESPAN_MAX];

        (void) backoff_next_delay(s->backoff, &delay);
        if (error < 0)
                s->drop_client = true;
        /* An IdM or session refusal may mean the token went bad. */
        if (status == 401 && st != STEP_TOKEN) {
                free(s->token);
                s->token = NULL;
        }
        set_state(s, REG_SESSION_RETRY_WAIT, status);
        log_struct_errno(status == 403 ? LOG_NOTICE : LOG_WARNING, error,
                         LOG_MESSAGE("Messaging session of %s: %s step failed (%s); retrying in %s.", s->runtime,
                                     step_name(st), strna(s->last_error),
                                     format_timespan_exact(buf, sizeof(buf), delay)),
                         LOG_MESSAGE_ID(REG_SESSION_MESSAGE_ID_FAILED),
                         LOG_FIELD("REG_ENDPOINT", "%s", identity_get_endpoint(s->id)),
                         LOG_FIELD("REG_RUNTIME", "%s", s->runtime),
                         LOG_FIELD("REG_STEP", "%s", step_name(st)),
                         LOG_FIELD("REG_STATUS", "%d", status),
                         LOG_FIELD("REG_ERROR", "%s", strna(s->last_error)),
                         LOG_FIELD("REG_RETRY_USEC", "%" PRIu64, delay));
        (void) schedule(s, s->token ? (st == STEP_TOKEN ? STEP_TOKEN : STEP_SESSION) : STEP_TOKEN, delay);
}

/* --- connection ----------------------------------------------------------------------- */

static void on_client_close(H2Client *c, int error, const char *reason, void *userdata) {
        reg_session *s = userdata;

        if (c == s->client && error < 0)
                set_last_error(s, "connection lost: %s%s%s", strerror(-error), reason ? ", " : "", reason ?: "");
}

static const H2ClientCallbacks client_callbacks = { .on_close = on_client_close };

static int ensure_client(reg_session *s) {
        H2ClientConfig config;

        if (s->client && (s->drop_client || !h2_client_is_usable(s->client)))
                s->client = h2_client_unref(s->client);
        s->drop_client = false;
        if (s->client)
                return 0;
        h2_client_config_init(&config);
        config.connect_timeout_usec = REQUEST_TIMEOUT_USEC;
        config.max_response_body = 64 * 1024;
        return h2_client_new(s->event, s->url.host, s->url.port, s->tls, NULL, &config, &client_callbacks, s,
                             &s->client);
}

/* --- answers ----------------------------------------------------------------------------- */

static json_t *body_json(H2ClientRequest *req) {
        size_t size = 0;
        const uint8_t *b = h2_client_request_get_body(req, &size);

        return b && size > 0 ? json_loadb((const char *) b, size, 0, NULL) : NULL;
}

static void http_error(reg_session *s, H2ClientRequest *req, int status) {
        _cleanup_(json_decrefp) json_t *j = body_json(req);
        const char *d = json_string_value(json_object_get(j, "description"));

        set_last_error(s, "HTTP %d%s%s", status, d ? ": " : "", d ?: "");
}

static int send_token_request(reg_session *s, const H2ClientRequestCallbacks *cb, H2ClientRequest **ret);
static const H2ClientRequestCallbacks refresh_callbacks;

static int on_refresh(sd_event_source *es, uint64_t usec, void *userdata) {
        reg_session *s = userdata;
        int r;

        if (!s->gate_open)
                return 0;
        if (!s->req || s->state == REG_SESSION_RETRY_WAIT) {
                (void) schedule(s, STEP_TOKEN, 0);
                return 0;
        }
        /* The stream keeps running on the old token (it was checked when
         * it opened); the new one is fetched beside it, for what follows. */
        s->refresh_req = h2_client_request_unref(s->refresh_req);
        r = send_token_request(s, &refresh_callbacks, &s->refresh_req);
        if (r < 0)
                log_debug_errno(r, "Token refresh not sent (%m); the next session request gets one.");
        return 0;
}

static void token_done(reg_session *s, H2ClientRequest *req, int status);

static void on_refresh_complete(H2ClientRequest *req, int error, void *userdata) {
        reg_session *s = userdata;

        if (req != s->refresh_req)
                return;
        s->refresh_req = h2_client_request_unref(s->refresh_req);
        if (error < 0 || h2_client_request_get_status(req) != 200) {
                log_notice("Token refresh for %s failed (%s); the next session request tries again.",
                           identity_get_endpoint(s->id), error < 0 ? strerror(-error) : "refused");
                return;
        }
        token_done(s, req, 200);
}

static const H2ClientRequestCallbacks refresh_callbacks = { .on_complete = on_refresh_complete };

static void token_done(reg_session *s, H2ClientRequest *req, int status) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *t;
        json_int_t expires_in;

        if (status != 200) {
                http_error(s, req, status);
                fail(s, STEP_TOKEN, 0, status);
                return;
        }
        j = body_json(req);
        t = json_string_value(json_object_get(j, "access_token"));
        expires_in = json_integer_value(json_object_get(j, "expires_in"));
        if (!t || expires_in <= 0) {
                set_last_error(s, "token answer without access_token/expires_in");
                fail(s, STEP_TOKEN, 0, status);
                return;
        }
        free(s->token);
        s->token = strdup(t);
        if (!s->token) {
                fail(s, STEP_TOKEN, -ENOMEM, status);
                return;
        }
        s->token_expiry = now(CLOCK_MONOTONIC) + (usec_t) expires_in * USEC_PER_SEC;
        (void) event_reset_time_relative(s->event, &s->refresh_timer, (usec_t) expires_in * USEC_PER_SEC * 3 / 4,
                                         on_refresh, s, "reg-session-refresh");
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Got an access token for %s from the IdM (valid %" PRIi64 "s).",
                               identity_get_endpoint(s->id), (int64_t) expires_in),
                   LOG_MESSAGE_ID(REG_SESSION_MESSAGE_ID_TOKEN),
                   LOG_FIELD("REG_ENDPOINT", "%s", identity_get_endpoint(s->id)),
                   LOG_FIELD("REG_TOKEN_LIFETIME_SEC", "%" PRIi64, (int64_t) expires_in));
        /* A stream that is up stays up; otherwise go on. */
        if (s->state == REG_SESSION_STREAMING)
                return;
        (void) schedule(s, STEP_SESSION, 0);
}

static void session_done(reg_session *s, H2ClientRequest *req, int status) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *stream;

        if (status != 200 && status != 201) {
                http_error(s, req, status);
                fail(s, STEP_SESSION, 0, status);
                return;
        }
        j = body_json(req);
        stream = json_string_value(json_object_get(j, "stream"));
        if (!stream || stream[0] != '/' || strpbrk(stream, "?# \r\n")) {
                set_last_error(s, "session answer without a stream path");
                fail(s, STEP_SESSION, 0, status);
                return;
        }
        /* Where reg_session_send() posts; optional in the answer. */
        {
                const char *messages = json_string_value(json_object_get(j, "messages"));

                free(s->messages_path);
                s->messages_path = messages && messages[0] == '/' && !strpbrk(messages, "?# \r\n")
                                           ? strdup(messages)
                                           : NULL;
        }
        free(s->stream_path);
        s->stream_path = strdup(stream);
        if (!s->stream_path) {
                fail(s, STEP_SESSION, -ENOMEM, status);
                return;
        }
        (void) schedule(s, STEP_STREAM, 0);
}

static void deliver_line(reg_session *s, const char *line, size_t len) {
        _cleanup_rt_message_ rt_message *m = NULL;
        _cleanup_free_ char *reason = NULL;
        int r;

        if (len == 0)
                return;
        r = rt_message_parse(line, len, NULL, &m, &reason);
        if (r < 0) {
                log_warning_errno(r, "Dropping an invalid message from the domain: %s", strna(reason));
                return;
        }
        s->messages++;
        /* Traffic on the stream: it works, whatever happened before. */
        backoff_reset(s->backoff);
        if (s->message_handler)
                s->message_handler(m, s->message_userdata);
}

static int on_stream_response(H2ClientRequest *req, int status, void *userdata) {
        reg_session *s = userdata;

        if (status != 200)
                return 0; /* the body is an error; on_complete decides */
        s->stream_since = now(CLOCK_MONOTONIC);
        set_state(s, REG_SESSION_STREAMING, status);
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Messaging session of %s open: receiving on %s.", s->runtime, s->stream_path),
                   LOG_MESSAGE_ID(REG_SESSION_MESSAGE_ID_OPENED),
                   LOG_FIELD("REG_ENDPOINT", "%s", identity_get_endpoint(s->id)),
                   LOG_FIELD("REG_RUNTIME", "%s", s->runtime),
                   LOG_FIELD("REG_STREAM", "%s", s->stream_path));
        return 0;
}

static int on_stream_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        reg_session *s = userdata;

        if (h2_client_request_get_status(req) != 200)
                return 0;
        for (size_t i = 0; i < size; i++) {
                if (data[i] == '\n') {
                        deliver_line(s, s->line, s->line_len);
                        s->line_len = 0;
                        continue;
                }
                if (s->line_len >= LINE_MAX_BYTES)
                        return -EMSGSIZE;
                s->line[s->line_len++] = (char) data[i];
        }
        return 0;
}

static int on_connection_lost(sd_event_source *es, void *userdata) {
        reg_session *s = userdata;
        step st = s->req_step;

        s->defer = sd_event_source_disable_unref(s->defer);
        if (!s->last_error)
                set_last_error(s, "connection lost");
        fail(s, st, -ECONNABORTED, 0);
        return 0;
}

static void on_complete(H2ClientRequest *req, int error, void *userdata) {
        reg_session *s = userdata;
        step st = s->req_step;
        int status;

        if (req != s->req)
                return;
        s->req = h2_client_request_unref(s->req);
        status = error < 0 ? 0 : h2_client_request_get_status(req);

        if (st == STEP_STREAM && s->state == REG_SESSION_STREAMING) {
                /* Only a stream that lasted counts as a success. */
                if (now(CLOCK_MONOTONIC) - s->stream_since >= STREAM_HEALTHY_USEC)
                        backoff_reset(s->backoff);
                s->line_len = 0;
                if (error == 0)
                        set_last_error(s, "the domain ended the stream");
        }
        if (error == -ECONNABORTED) {
                free(s->last_error);
                s->last_error = NULL;
                s->defer = sd_event_source_disable_unref(s->defer);
                if (sd_event_add_defer(s->event, &s->defer, on_connection_lost, s) >= 0)
                        return;
        }
        if (error < 0) {
                set_last_error(s, "%s", strerror(-error));
                fail(s, st, error, 0);
                return;
        }
        switch (st) {
        case STEP_TOKEN:
                token_done(s, req, status);
                break;
        case STEP_SESSION:
                session_done(s, req, status);
                break;
        case STEP_STREAM:
                if (status != 200)
                        http_error(s, req, status);
                /* Ended (replaced, or the domain shut down): open again. */
                fail(s, STEP_SESSION, 0, status == 200 ? 0 : status);
                break;
        }
}

static const H2ClientRequestCallbacks buffered_callbacks = { .on_complete = on_complete };
static const H2ClientRequestCallbacks stream_callbacks = {
        .on_response = on_stream_response,
        .on_data = on_stream_data,
        .on_complete = on_complete,
};

/* --- requests ------------------------------------------------------------------------------- */

static int build_token_body(reg_session *s, char **ret) {
        _cleanup_free_ char *assertion = NULL;
        int r;

        r = token_assertion_new(identity_get_token_key(s->id), identity_get_endpoint(s->id), s->token_url,
                                ASSERTION_LIFETIME_USEC, 0, &assertion);
        if (r < 0)
                return r;
        if (asprintf(ret,
                     "grant_type=client_credentials&scope=runtime%%20peer&client_assertion_type="
                     "urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer"
                     "&client_assertion=%s",
                     assertion) < 0)
                return -ENOMEM;
        return 0;
}

static int send_token_request(reg_session *s, const H2ClientRequestCallbacks *cb, H2ClientRequest **ret) {
        _cleanup_free_ char *body = NULL;
        int r;

        r = build_token_body(s, &body);
        if (r < 0)
                return r;
        r = ensure_client(s);
        if (r < 0)
                return r;
        return h2_client_request(s->client, "POST", "/idm/token",
                                 (const H2Header[]) { { "content-type", "application/x-www-form-urlencoded" } }, 1,
                                 body, strlen(body), 0, cb, s, ret);
}

static int send_step(reg_session *s, step st) {
        _cleanup_free_ char *body = NULL, *auth = NULL;
        const H2ClientRequestCallbacks *cb = &buffered_callbacks;
        const char *method = "POST", *path, *ctype = "application/json";
        H2Header h[2];
        size_t n = 0;
        int r;

        if (st != STEP_TOKEN && (!s->token || now(CLOCK_MONOTONIC) >= s->token_expiry))
                st = STEP_TOKEN;

        switch (st) {
        case STEP_TOKEN:
                r = build_token_body(s, &body);
                if (r < 0)
                        return r;
                path = "/idm/token";
                ctype = "application/x-www-form-urlencoded";
                set_state(s, REG_SESSION_TOKEN, 0);
                break;
        case STEP_SESSION: {
                json_t *o = json_pack("{s:s}", "runtime", s->runtime);

                body = o ? json_dumps(o, JSON_COMPACT) : NULL;
                json_decref(o);
                if (!body)
                        return -ENOMEM;
                path = "/msg/sessions";
                set_state(s, REG_SESSION_OPENING, 0);
                break;
        }
        case STEP_STREAM:
        default:
                method = "GET";
                path = s->stream_path;
                cb = &stream_callbacks;
                s->line_len = 0;
                break;
        }
        if (st != STEP_TOKEN) {
                if (asprintf(&auth, "Bearer %s", s->token) < 0)
                        return -ENOMEM;
                h[n++] = (H2Header) { "authorization", auth };
        }
        if (body)
                h[n++] = (H2Header) { "content-type", ctype };

        r = ensure_client(s);
        if (r < 0)
                return r;
        s->req_step = st;
        r = h2_client_request(s->client, method, path, h, n, body, body ? strlen(body) : 0, 0, cb, s, &s->req);
        if (r < 0)
                return r;
        /* The stream lives as long as the domain keeps it. */
        (void) h2_client_request_set_timeout(s->req, st == STEP_STREAM ? 0 : REQUEST_TIMEOUT_USEC);
        return 0;
}

static int on_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        reg_session *s = userdata;
        int r;

        if (!s->gate_open || !s->started)
                return 0;
        if (s->req) {
                (void) h2_client_request_cancel(s->req);
                s->req = h2_client_request_unref(s->req);
        }
        r = send_step(s, s->next_step);
        if (r < 0) {
                set_last_error(s, "cannot send: %s", strerror(-r));
                fail(s, s->next_step, r, 0);
        }
        return 0;
}

/* --- gate ------------------------------------------------------------------------------------ */

static void on_gate(gate_kind kind, bool open, const char *reason, void *userdata) {
        reg_session *s = userdata;

        if (kind != GATE_REGISTRATION || open == s->gate_open)
                return;
        s->gate_open = open;
        if (!s->started)
                return;
        if (open) {
                backoff_reset(s->backoff);
                (void) schedule(s, STEP_SESSION, 0);
        } else {
                stop(s);
                s->client = h2_client_unref(s->client);
                set_state(s, REG_SESSION_IDLE, 0);
        }
}

static void on_mobility(const gate_mobility *ev, void *userdata) {
        reg_session *s = userdata;

        if (!s->started || !s->gate_open)
                return;
        /* The stream's connection belongs to the old address. */
        stop(s);
        s->drop_client = true;
        (void) schedule(s, STEP_SESSION, 0);
}

/* --- object ------------------------------------------------------------------------------------ */

static int load_runtime_id(const char *dir, char ret[static ID_UUID_STRING_MAX]) {
        _cleanup_free_ char *path = NULL, *text = NULL, *line = NULL;
        int r;

        if (asprintf(&path, "%s/%s", dir, REG_SESSION_RUNTIME_ID_FILE) < 0)
                return -ENOMEM;
        r = read_full_file(path, 256, &text, NULL);
        if (r >= 0) {
                text[strcspn(text, "\n")] = '\0';
                if (!id_uuid_is_valid(text))
                        return log_error_errno(EBADMSG, "%s does not hold a UUID (not replacing it).", path);
                memcpy(ret, text, ID_UUID_STRING_MAX);
                return 0;
        }
        if (r != -ENOENT)
                return log_error_errno(r, "Failed to read %s: %m", path);
        r = id_uuid_new(ret);
        if (r < 0)
                return r;
        if (asprintf(&line, "%s\n", ret) < 0)
                return -ENOMEM;
        r = write_file_atomic(path, line, strlen(line), 0644);
        if (r < 0)
                return log_error_errno(r, "Failed to store the runtime id in %s: %m", path);
        return 0;
}

int reg_session_new(sd_event *e, identity *id, gates *g, const reg_session_options *o, reg_session **ret) {
        _cleanup_reg_session_ reg_session *s = NULL;
        char uuid[ID_UUID_STRING_MAX];
        const char *reason = NULL;
        int r;

        if (!e || !id || !g || !o || !o->url || !o->domain_name || !o->state_dir || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->id = id;
        s->gates = g;
        r = registration_url_parse(o->url, &s->url, &reason);
        if (r < 0)
                return log_error_errno(r, "Domain URL %s: %s", o->url, reason);
        s->url_string = strdup(o->url);
        if (!s->url_string)
                return -ENOMEM;
        if (s->url.tls) {
                if (!o->ca_file)
                        return log_error_errno(EINVAL, "Domain URL %s needs a CA file.", o->url);
                r = tls_client_ctx_new(o->ca_file, &s->tls);
                if (r < 0)
                        return log_error_errno(r, "Failed to load the domain CA %s: %m", o->ca_file);
        }
        r = load_runtime_id(o->state_dir, uuid);
        if (r < 0)
                return r;
        if (asprintf(&s->runtime, "runtime://%s/%s", o->domain_name, uuid) < 0 ||
            asprintf(&s->token_url, "https://%s/idm/token", o->domain_name) < 0)
                return -ENOMEM;
        s->line = malloc(LINE_MAX_BYTES);
        if (!s->line)
                return -ENOMEM;
        r = backoff_new(&(backoff_config) {
                                .initial = o->retry_initial_usec ?: REGISTRATION_RETRY_INITIAL_USEC,
                                .max = MAX(o->retry_max_usec ?: REGISTRATION_RETRY_MAX_USEC,
                                           o->retry_initial_usec ?: REGISTRATION_RETRY_INITIAL_USEC),
                                .retry_after_max = REGISTRATION_RETRY_AFTER_MAX_USEC,
                        },
                        &s->backoff);
        if (r < 0)
                return r;
        if (o->random)
                backoff_set_random(s->backoff, o->random, o->random_userdata);
        r = gates_subscribe(g, GATE_REGISTRATION, on_gate, s, &s->gate_sub);
        if (r >= 0)
                r = gates_subscribe_mobility(g, on_mobility, s, &s->mobility_sub);
        if (r < 0)
                return r;
        s->gate_open = gates_is_open(g, GATE_REGISTRATION, NULL);
        *ret = TAKE_PTR(s);
        return 0;
}

reg_session *reg_session_free(reg_session *s) {
        if (!s)
                return NULL;
        gate_subscription_free(s->gate_sub);
        gate_subscription_free(s->mobility_sub);
        stop(s);
        sd_event_source_disable_unref(s->timer);
        sd_event_source_disable_unref(s->refresh_timer);
        h2_client_unref(s->client);
        if (s->tls)
                SSL_CTX_free(s->tls);
        backoff_free(s->backoff);
        sd_event_unref(s->event);
        if (s->token)
                explicit_bzero_safe(s->token, strlen(s->token));
        free(s->token);
        free(s->url_string);
        free(s->runtime);
        free(s->token_url);
        free(s->stream_path);
        free(s->messages_path);
        free(s->line);
        free(s->last_error);
        free(s);
        return NULL;
}

static void on_send_complete(H2ClientRequest *req, int error, void *userdata) {
        int status = error < 0 ? 0 : h2_client_request_get_status(req);

        if (error < 0)
                log_warning_errno(error, "A message to the domain was lost: %m");
        else if (status != 202)
                log_warning("The domain refused a message with HTTP %d.", status);
}

static const H2ClientRequestCallbacks send_callbacks = { .on_complete = on_send_complete };

int reg_session_send(reg_session *s, const rt_message *m) {
        _cleanup_free_ char *json = NULL, *auth = NULL;
        const char *token;
        int r;

        if (!s || !m)
                return -EINVAL;
        token = reg_session_get_token(s);
        if (s->state != REG_SESSION_STREAMING || !token || !s->messages_path)
                return -ENOTCONN;
        r = rt_message_to_json(m, &json);
        if (r < 0)
                return r;
        if (asprintf(&auth, "Bearer %s", token) < 0)
                return -ENOMEM;
        r = ensure_client(s);
        if (r < 0)
                return r;
        /* Fire and forget: the client holds the request until it completes. */
        r = h2_client_request(s->client, "POST", s->messages_path,
                              (const H2Header[]) { { "authorization", auth }, { "content-type", "application/json" } },
                              2, json, strlen(json), 0, &send_callbacks, s, NULL);
        if (r < 0)
                return r;
        return 0;
}

void reg_session_set_message_handler(reg_session *s, reg_session_message_handler_t handler, void *userdata) {
        s->message_handler = handler;
        s->message_userdata = userdata;
}

void reg_session_set_state_handler(reg_session *s, reg_session_state_handler_t handler, void *userdata) {
        s->state_handler = handler;
        s->state_userdata = userdata;
}

int reg_session_start(reg_session *s) {
        if (!s)
                return -EINVAL;
        if (s->started)
                return 0;
        s->started = true;
        if (s->gate_open)
                return schedule(s, STEP_TOKEN, 0);
        return 0;
}

reg_session_state reg_session_get_state(const reg_session *s) {
        return s->state;
}

const char *reg_session_get_runtime(const reg_session *s) {
        return s->runtime;
}

const char *reg_session_get_token(const reg_session *s) {
        return s->token && now(CLOCK_MONOTONIC) < s->token_expiry ? s->token : NULL;
}

usec_t reg_session_get_token_expiry(const reg_session *s) {
        return reg_session_get_token(s) ? s->token_expiry : 0;
}

unsigned reg_session_get_messages(const reg_session *s) {
        return s->messages;
}

json_t *reg_session_status_json(const reg_session *s) {
        return json_pack("{s:s, s:s, s:b, s:s?, s:I, s:s?}",
                         "state", reg_session_state_to_string(s->state),
                         "runtime", s->runtime,
                         "token", reg_session_get_token(s) != NULL,
                         "stream", s->stream_path,
                         "messages", (json_int_t) s->messages,
                         "last_error", s->last_error);
}
