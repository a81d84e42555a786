/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The p2p protostub (docs/protostubs.md): one HTTP/2 connection to a peer
 * device's Local M2M Resource Directory (docs/local-rd.md), with the
 * device token read from the agent over the bus.
 *
 *   subscribe    GET /rd/resources/<path>?subscribe=1, a long-lived NDJSON
 *                stream per (subscriber, resource); its lines go to the bus
 *   unsubscribe  cancels that stream
 *   read         GET /rd/resources/<path>
 *   update       PUT /rd/resources/<path> with the SenML value
 *
 * each with rethink-from: the hyperty that asked. Answers carry the
 * peer's status and description. Streams lost with the connection are
 * opened again after lib/backoff's delays; nothing is tried while the
 * agent says connectivity is offline. */

#include <stdarg.h>

#include "backoff.h"
#include "h2-client.h"
#include "stub-common.h"
#include "tls.h"

#define REQUEST_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define RETRY_INITIAL_USEC (1 * USEC_PER_SEC)
#define RETRY_MAX_USEC (60 * USEC_PER_SEC)
#define STREAM_HEALTHY_USEC (30 * USEC_PER_SEC)
/* Below the peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 for the Local RD,
 * 32 streams per subject), with room for reads and updates: a stream
 * beyond the peer's limit would wait for one to end, which they do not. */
#define MAX_SUBSCRIPTIONS 32u
#define MAX_WAITING 256u
#define MAX_BODY (64u * 1024u)

typedef struct stub stub;

typedef struct sub {
        stub *stub;
        struct sub *next;
        char *from, *resource, *path;
        H2ClientRequest *req;
        rt_message *request;     /* the subscribe still to be answered */
        stub_lines lines;
        bool open;               /* the peer answered 200 */
        usec_t since;
} sub;

typedef struct op {
        stub *stub;
        struct op *next;
        rt_message *m;
        H2ClientRequest *req;
} op;

struct stub {
        sd_event *event;
        hyperty *hyperty;
        stub_token token;
        const char *address;
        char *domain;
        char *peer;
        stub_url url;
        SSL_CTX *tls;

        bool offline;
        H2Client *client;
        unsigned attempts;
        backoff *backoff;
        sd_event_source *retry_timer;

        sub *subs;
        unsigned n_subs;
        op *ops;
        /* Requests that came before the token; answered 503 when none comes. */
        rt_message *waiting[MAX_WAITING];
        unsigned n_waiting;
};

static void go_down(stub *s, const char *why, bool retry);
static void handle(stub *s, const rt_message *m);

static char *strdupf(const char *fmt, ...) _printf_(1, 2);
static char *strdupf(const char *fmt, ...) {
        va_list ap;
        char *t = NULL;

        va_start(ap, fmt);
        if (vasprintf(&t, fmt, ap) < 0)
                t = NULL;
        va_end(ap);
        return t;
}

static rt_message *message_copy(const rt_message *m) {
        _cleanup_free_ char *json = NULL;
        rt_message *c = NULL;

        if (rt_message_to_json(m, &json) < 0)
                return NULL;
        if (rt_message_parse(json, strlen(json), &(rt_message_limits) { .max_size = SIZE_MAX / 2 }, &c, NULL) < 0)
                return NULL;
        return c;
}

static json_t *body_json(H2ClientRequest *req) {
        size_t size = 0;
        const uint8_t *b = h2_client_request_get_body(req, &size);

        return b && size > 0 ? json_loadb((const char *) b, size, 0, NULL) : NULL;
}

/* The peer's answer to a request as a bus response: its status, its
 * description on errors, the JSON body as value on success. */
static void answer_from(stub *s, const rt_message *request, H2ClientRequest *req, int error) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_free_ char *d = NULL;
        int status;

        if (error < 0) {
                d = strdupf("the peer did not answer: %s", strerror(-error));
                stub_answer(s->hyperty, request, error == -ETIMEDOUT ? 504 : 503, d, NULL);
                return;
        }
        status = h2_client_request_get_status(req);
        j = body_json(req);
        if (status < 100 || status > 599)
                stub_answer(s->hyperty, request, 502, "the peer gave no valid status", NULL);
        else if (status >= 400)
                stub_answer(s->hyperty, request, status, json_string_value(json_object_get(j, "description")), NULL);
        else
                /* A 202's body only repeats the status. */
                stub_answer(s->hyperty, request, status, status == 202 ? "handed to the reporter" : NULL,
                            status == 202 ? NULL : j);
}

/* --- connection ----------------------------------------------------------------------------- */

static void on_client_close(H2Client *c, int error, const char *reason, void *userdata) {
        stub *s = userdata;
        _cleanup_free_ char *why = NULL;

        if (c != s->client)
                return;
        why = strdupf("connection closed: %s%s%s", error < 0 ? strerror(-error) : "by the peer", reason ? ", " : "",
                      strempty(reason));
        /* Streams are gone with it; without any, a new connection waits
         * for the next request. */
        go_down(s, why, s->n_subs > 0);
}

static const H2ClientCallbacks client_callbacks = { .on_close = on_client_close };

static int ensure_client(stub *s) {
        H2ClientConfig config;
        int r;

        if (s->client && !h2_client_is_usable(s->client))
                s->client = h2_client_unref(s->client);
        if (s->client)
                return 0;
        h2_client_config_init(&config);
        config.connect_timeout_usec = REQUEST_TIMEOUT_USEC;
        config.max_response_body = MAX_BODY;
        s->attempts++;
        log_info("Connecting to the peer's resource directory at %s (attempt %u).", s->peer, s->attempts);
        r = h2_client_new(s->event, s->url.host, s->url.port, s->tls, NULL, &config, &client_callbacks, s,
                          &s->client);
        if (r < 0)
                return log_warning_errno(r, "Failed to connect to %s: %m", s->peer);
        return 0;
}

static int request(stub *s, const char *method, const char *path, const char *from, const char *body,
                   const H2ClientRequestCallbacks *cb, void *userdata, H2ClientRequest **ret) {
        _cleanup_free_ char *auth = NULL;
        const char *t = stub_token_get(&s->token);
        H2Header h[3];
        size_t n = 0;
        int r;

        if (!t)
                return -ENOKEY;
        if (asprintf(&auth, "Bearer %s", t) < 0)
                return -ENOMEM;
        r = ensure_client(s);
        if (r < 0)
                return r;
        h[n++] = (H2Header) { "authorization", auth };
        h[n++] = (H2Header) { "rethink-from", from };
        if (body)
                h[n++] = (H2Header) { "content-type", "application/senml+json" };
        return h2_client_request(s->client, method, path, h, n, body, body ? strlen(body) : 0, 0, cb, userdata,
                                 ret);
}

/* /rd/resources/<path> for ctxt://<peer's domain>/<path>. */
static int resource_path(stub *s, const char *resource, char **ret, const char **ret_reason) {
        _cleanup_rt_address_ rt_address *a = NULL;

        if (!resource)
                return *ret_reason = "body.resource: missing", -EINVAL;
        if (rt_address_parse(resource, &a, NULL) < 0 || rt_address_get_scheme(a) != RT_ADDRESS_CTXT)
                return *ret_reason = "body.resource: expected a ctxt:// address", -EINVAL;
        if (!streq(rt_address_get_authority(a), s->domain))
                return *ret_reason = "body.resource: not a resource of this peer's domain", -EINVAL;
        /* Valid address paths are already percent-encoded as needed. */
        if (asprintf(ret, "/rd/resources/%s", rt_address_get_path(a)) < 0)
                return -ENOMEM;
        return 0;
}

/* --- subscriptions ---------------------------------------------------------------------------- */

static sub *sub_free(sub *x) {
        if (!x)
                return NULL;
        if (x->req) {
                (void) h2_client_request_cancel(x->req);
                h2_client_request_unref(x->req);
        }
        rt_message_free(x->request);
        free(x->lines.buf);
        free(x->from);
        free(x->resource);
        free(x->path);
        free(x);
        return NULL;
}

static void sub_remove(stub *s, sub *x) {
        for (sub **p = &s->subs; *p; p = &(*p)->next)
                if (*p == x) {
                        *p = x->next;
                        s->n_subs--;
                        break;
                }
        sub_free(x);
}

static sub *sub_find(stub *s, const char *from, const char *resource) {
        for (sub *x = s->subs; x; x = x->next)
                if (streq(x->from, from) && streq(x->resource, resource))
                        return x;
        return NULL;
}

static void deliver_line(const char *line, size_t len, void *userdata) {
        sub *x = userdata;
        stub *s = x->stub;
        _cleanup_rt_message_ rt_message *m = NULL;
        _cleanup_free_ char *reason = NULL;
        int r;

        r = rt_message_parse(line, len, NULL, &m, &reason);
        if (r < 0) {
                log_warning_errno(r, "Dropping an invalid notification from %s: %s", s->peer, strna(reason));
                return;
        }
        /* A stream carries what belongs to its subscriber only: updates
         * of the subscribed resource, and the peer's notices about it. */
        if (rt_message_get_n_to(m) != 1 || !streq(rt_message_get_to(m, 0), x->from)) {
                log_warning("Dropping a notification from %s not addressed to the subscriber.", s->peer);
                return;
        }
        if (!streq(rt_message_get_from(m), x->resource) ||
            (rt_message_get_type(m) != RT_MESSAGE_UPDATE && rt_message_get_type(m) != RT_MESSAGE_EXECUTE) ||
            (rt_message_get_type(m) == RT_MESSAGE_UPDATE && !streq_ptr(rt_message_get_resource(m), x->resource))) {
                log_warning("Dropping a message from %s that is not a notification of %s.", s->peer, x->resource);
                return;
        }
        r = hyperty_send_message(s->hyperty, m);
        if (r < 0)
                log_warning_errno(r, "Lost a notification of %s for %s: %m", x->resource, x->from);
}

static int on_retry(sd_event_source *es, uint64_t usec, void *userdata);

/* Opens the subscriptions without a stream again after the backoff; the
 * others, and the connection, stay as they are. */
static void schedule_retry(stub *s) {
        usec_t delay = RETRY_MAX_USEC;

        (void) backoff_next_delay(s->backoff, &delay);
        (void) event_reset_time_relative(s->event, &s->retry_timer, delay, on_retry, s, "p2p-retry");
}

static int on_sub_response(H2ClientRequest *req, int status, void *userdata) {
        sub *x = userdata;
        stub *s = x->stub;

        if (status != 200)
                return 0;
        (void) h2_client_request_set_timeout(req, 0);
        x->open = true;
        x->since = now(CLOCK_MONOTONIC);
        log_info("Subscribed %s to %s at %s.", x->from, x->resource, s->peer);
        if (x->request) {
                stub_answer(s->hyperty, x->request, 200, "subscribed", NULL);
                x->request = rt_message_free(x->request);
        }
        return 0;
}

static int on_sub_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        sub *x = userdata;

        if (h2_client_request_get_status(req) != 200)
                return 0;
        return stub_lines_feed(&x->lines, data, size, deliver_line, x);
}

static void on_sub_complete(H2ClientRequest *req, int error, void *userdata) {
        sub *x = userdata;
        stub *s = x->stub;
        int status = error < 0 ? 0 : h2_client_request_get_status(req);
        bool was_open = x->open;

        if (req != x->req)
                return;
        x->req = h2_client_request_unref(x->req);
        x->open = false;
        x->lines.len = 0;

        if (error == -ECONNABORTED || error == -ECONNREFUSED) {
                /* The connection went; on_client_close brings it back with
                 * every subscription. */
                if (x->request) {
                        answer_from(s, x->request, req, error);
                        sub_remove(s, x);
                }
                return;
        }
        if (status != 200 && status != 0) {
                /* Refused: the asker hears why; a re-subscription that is
                 * refused ends the subscription. */
                if (status == 401)
                        stub_token_forget(&s->token);
                if (x->request)
                        answer_from(s, x->request, req, 0);
                else
                        log_notice("The peer %s refused to renew the subscription of %s to %s (HTTP %d).", s->peer,
                                   x->from, x->resource, status);
                if (status == 401 && !x->request) {
                        /* A fresh token may do. */
                        go_down(s, "the peer refused the token", true);
                        return;
                }
                if (!x->request && status != 400 && status != 403 && status != 404 && status != 405) {
                        /* Passing (503 while the peer has no key set yet,
                         * 500, 429): the subscription stays. */
                        schedule_retry(s);
                        return;
                }
                sub_remove(s, x);
                return;
        }
        if (x->request) {
                answer_from(s, x->request, req, error);
                sub_remove(s, x);
                return;
        }
        /* The peer ended a stream that was open (the resource was
         * withdrawn, the peer restarts): open it again after the backoff. */
        if (was_open && now(CLOCK_MONOTONIC) - x->since >= STREAM_HEALTHY_USEC)
                backoff_reset(s->backoff);
        log_info("The peer %s ended the subscription stream of %s to %s; subscribing again.", s->peer, x->from,
                 x->resource);
        schedule_retry(s);
}

static const H2ClientRequestCallbacks sub_callbacks = {
        .on_response = on_sub_response,
        .on_data = on_sub_data,
        .on_complete = on_sub_complete,
};

static int sub_open(stub *s, sub *x) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s?subscribe=1", x->path) < 0)
                return -ENOMEM;
        x->lines.len = 0;
        x->open = false;
        r = request(s, "GET", path, x->from, NULL, &sub_callbacks, x, &x->req);
        if (r < 0)
                return r;
        /* Until the answer comes; the stream itself then lasts. */
        (void) h2_client_request_set_timeout(x->req, REQUEST_TIMEOUT_USEC);
        return 0;
}

/* --- one-shot requests ------------------------------------------------------------------------- */

static void op_unlink(stub *s, op *o) {
        for (op **p = &s->ops; *p; p = &(*p)->next)
                if (*p == o) {
                        *p = o->next;
                        return;
                }
}

static op *op_free(op *o) {
        if (!o)
                return NULL;
        if (o->req) {
                (void) h2_client_request_cancel(o->req);
                h2_client_request_unref(o->req);
        }
        rt_message_free(o->m);
        free(o);
        return NULL;
}

static void on_op_complete(H2ClientRequest *req, int error, void *userdata) {
        op *o = userdata;
        stub *s = o->stub;

        op_unlink(s, o);
        o->req = h2_client_request_unref(o->req);
        if (error == 0 && h2_client_request_get_status(req) == 401)
                stub_token_forget(&s->token);
        answer_from(s, o->m, req, error);
        op_free(o);
}

static const H2ClientRequestCallbacks op_callbacks = { .on_complete = on_op_complete };

static int op_start(stub *s, const rt_message *m, const char *method, const char *path, const char *body) {
        op *o;
        int r;

        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->stub = s;
        o->m = message_copy(m);
        if (!o->m) {
                free(o);
                return -ENOMEM;
        }
        r = request(s, method, path, rt_message_get_from(m), body, &op_callbacks, o, &o->req);
        if (r < 0) {
                op_free(o);
                return r;
        }
        (void) h2_client_request_set_timeout(o->req, REQUEST_TIMEOUT_USEC);
        o->next = s->ops;
        s->ops = o;
        return 0;
}

/* --- the state machine -------------------------------------------------------------------------- */

static int on_retry(sd_event_source *es, uint64_t usec, void *userdata) {
        stub *s = userdata;
        int r;

        if (s->offline || !hyperty_is_connected(s->hyperty))
                return 0;
        if (!stub_token_get(&s->token)) {
                (void) stub_token_ask(&s->token);
                return 0;
        }
        for (sub *x = s->subs; x; x = x->next) {
                if (x->req)
                        continue;
                r = sub_open(s, x);
                if (r < 0) {
                        _cleanup_free_ char *why = strdupf("cannot subscribe again: %s", strerror(-r));

                        go_down(s, why, true);
                        return 0;
                }
        }
        return 0;
}

static void go_down(stub *s, const char *why, bool retry) {
        usec_t delay = RETRY_MAX_USEC;
        char buf[FORMAT_TIMESPAN_MAX];
        H2Client *c = TAKE_PTR(s->client);

        /* One-shot requests are answered 503; subscriptions stay and are
         * opened again. */
        while (s->ops) {
                op *o = s->ops;

                s->ops = o->next;
                if (o->req) {
                        (void) h2_client_request_cancel(o->req);
                        o->req = h2_client_request_unref(o->req);
                }
                stub_answer(s->hyperty, o->m, 503, "the connection to the peer was lost", NULL);
                op_free(o);
        }
        for (sub *x = s->subs, *n; x; x = n) {
                n = x->next;
                if (x->req) {
                        (void) h2_client_request_cancel(x->req);
                        x->req = h2_client_request_unref(x->req);
                }
                x->open = false;
                if (x->request) {
                        stub_answer(s->hyperty, x->request, 503, "the connection to the peer was lost", NULL);
                        sub_remove(s, x);
                }
        }
        h2_client_unref(c);
        if (s->retry_timer)
                (void) sd_event_source_set_enabled(s->retry_timer, SD_EVENT_OFF);
        if (!retry || s->offline || s->n_subs == 0) {
                if (why)
                        log_info("Connection to %s down: %s.", s->peer, why);
                return;
        }
        (void) backoff_next_delay(s->backoff, &delay);
        log_warning("Connection to %s down (%s); subscribing again in %s.", s->peer, strna(why),
                    format_timespan_exact(buf, sizeof(buf), delay));
        (void) event_reset_time_relative(s->event, &s->retry_timer, delay, on_retry, s, "p2p-retry");
}

/* --- requests from the bus ----------------------------------------------------------------------- */

static void handle(stub *s, const rt_message *m) {
        _cleanup_free_ char *path = NULL, *body = NULL;
        const char *reason = NULL, *resource = rt_message_get_resource(m), *from = rt_message_get_from(m);
        rt_message_type type = rt_message_get_type(m);
        sub *x;
        int r;

        if (type == RT_MESSAGE_RESPONSE) {
                log_debug("Ignoring a response for the protostub itself.");
                return;
        }
        if (type != RT_MESSAGE_SUBSCRIBE && type != RT_MESSAGE_UNSUBSCRIBE && type != RT_MESSAGE_READ &&
            type != RT_MESSAGE_UPDATE)
                return stub_answer(s->hyperty, m, 501, "the p2p protostub takes subscribe, unsubscribe, read and update",
                                   NULL);
        r = resource_path(s, resource, &path, &reason);
        if (r < 0)
                return stub_answer(s->hyperty, m, r == -ENOMEM ? 500 : 400, r == -ENOMEM ? "out of memory" : reason,
                                   NULL);
        if (s->offline)
                return stub_answer(s->hyperty, m, 503, "connectivity is offline", NULL);
        if (!stub_token_get(&s->token)) {
                if (s->n_waiting >= MAX_WAITING)
                        return stub_answer(s->hyperty, m, 503, "no token from the agent yet", NULL);
                s->waiting[s->n_waiting] = message_copy(m);
                if (s->waiting[s->n_waiting])
                        s->n_waiting++;
                (void) stub_token_ask(&s->token);
                return;
        }

        switch (type) {
        case RT_MESSAGE_SUBSCRIBE:
                x = sub_find(s, from, resource);
                if (x) {
                        /* Subscribing again is harmless: the stream is there. */
                        if (x->request)
                                return stub_answer(s->hyperty, m, 409, "a subscription is being opened", NULL);
                        return stub_answer(s->hyperty, m, 200, "subscribed", NULL);
                }
                if (s->n_subs >= MAX_SUBSCRIPTIONS)
                        return stub_answer(s->hyperty, m, 503, "too many subscriptions", NULL);
                x = calloc(1, sizeof(*x));
                if (!x)
                        return stub_answer(s->hyperty, m, 500, "out of memory", NULL);
                x->stub = s;
                x->from = strdup(from);
                x->resource = strdup(resource);
                x->path = TAKE_PTR(path);
                x->request = message_copy(m);
                if (!x->from || !x->resource || !x->request) {
                        sub_free(x);
                        return stub_answer(s->hyperty, m, 500, "out of memory", NULL);
                }
                x->next = s->subs;
                s->subs = x;
                s->n_subs++;
                r = sub_open(s, x);
                if (r < 0) {
                        sub_remove(s, x);
                        return stub_answer(s->hyperty, m, 503, "cannot reach the peer", NULL);
                }
                return;
        case RT_MESSAGE_UNSUBSCRIBE:
                x = sub_find(s, from, resource);
                if (!x)
                        return stub_answer(s->hyperty, m, 404, "not subscribed", NULL);
                if (x->request)
                        stub_answer(s->hyperty, x->request, 409, "unsubscribed before the peer answered", NULL);
                sub_remove(s, x);
                log_info("Unsubscribed %s from %s at %s.", from, resource, s->peer);
                return stub_answer(s->hyperty, m, 200, "unsubscribed", NULL);
        case RT_MESSAGE_READ:
                r = op_start(s, m, "GET", path, NULL);
                break;
        case RT_MESSAGE_UPDATE: {
                json_t *v = rt_message_get_value(m);

                if (!json_is_array(v))
                        return stub_answer(s->hyperty, m, 400, "body.value: expected SenML (a JSON array)", NULL);
                body = json_dumps(v, JSON_COMPACT);
                if (!body)
                        return stub_answer(s->hyperty, m, 500, "out of memory", NULL);
                r = op_start(s, m, "PUT", path, body);
                break;
        }
        default:
                r = -EINVAL;
                break;
        }
        if (r < 0)
                stub_answer(s->hyperty, m, 503, "cannot reach the peer", NULL);
}

static void on_token(stub_token *t, int code, void *userdata) {
        stub *s = userdata;
        unsigned n = s->n_waiting;

        s->n_waiting = 0;
        for (unsigned i = 0; i < n; i++) {
                if (code == 200)
                        handle(s, s->waiting[i]);
                else
                        stub_answer(s->hyperty, s->waiting[i], 503, "no token from the agent", NULL);
                s->waiting[i] = rt_message_free(s->waiting[i]);
        }
        if (code == 200 && s->n_subs > 0 && !s->offline)
                (void) on_retry(NULL, 0, s);
        else if (code != 200 && s->n_subs > 0 && !stub_token_get(&s->token))
                /* Only once the old token is gone: a failed refresh while it
                 * lasts changes nothing for the streams. */
                go_down(s, "the agent gave no token", true);
}

static void on_bus_message(hyperty *h, const rt_message *m, void *userdata) {
        handle(userdata, m);
}

static void on_connectivity(hyperty *h, const char *state, void *userdata) {
        stub *s = userdata;
        bool offline = streq_ptr(state, "offline");

        if (offline == s->offline)
                return;
        s->offline = offline;
        if (offline) {
                log_info("Connectivity is offline: no connection to %s until it is back.", s->peer);
                go_down(s, "connectivity offline", false);
                return;
        }
        log_info("Connectivity is %s: reconnecting to %s now.", state, s->peer);
        backoff_reset(s->backoff);
        if (s->n_subs > 0)
                (void) on_retry(NULL, 0, s);
}

static void on_bus_state(hyperty *h, bool connected, void *userdata) {
        stub *s = userdata;

        if (!connected)
                return;
        s->offline = streq_ptr(hyperty_get_connectivity(h), "offline");
        if (!stub_token_get(&s->token))
                (void) stub_token_ask(&s->token);
}

/* --- main ------------------------------------------------------------------------------------- */

static stub *stub_free(stub *s) {
        if (!s)
                return NULL;
        while (s->subs)
                sub_remove(s, s->subs);
        while (s->ops) {
                op *o = s->ops;

                s->ops = o->next;
                op_free(o);
        }
        for (unsigned i = 0; i < s->n_waiting; i++)
                rt_message_free(s->waiting[i]);
        h2_client_unref(s->client);
        stub_token_done(&s->token);
        sd_event_source_disable_unref(s->retry_timer);
        hyperty_free(s->hyperty);
        if (s->tls)
                SSL_CTX_free(s->tls);
        backoff_free(s->backoff);
        free(s->domain);
        free(s->peer);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(stub *, stub_free);

static int stub_new(sd_event *e, stub **ret) {
        _cleanup_(stub_freep) stub *s = NULL;
        _cleanup_(json_decrefp) json_t *target = NULL;
        _cleanup_free_ char *probe = NULL;
        const char *domain, *peer;
        int r;

        r = stub_target_load(&target);
        if (r < 0)
                return r;
        peer = stub_target_string(target, "peer", true);
        domain = stub_target_string(target, "domain", true);
        if (!peer || !domain)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return log_oom();
        s->event = sd_event_ref(e);
        r = stub_target_endpoint(target, "peer", &s->url, &s->tls);
        if (r < 0)
                return r;
        s->peer = strdup(peer);
        s->domain = strdup(domain);
        if (!s->peer || !s->domain || asprintf(&probe, "ctxt://%s/x", domain) < 0)
                return log_oom();
        if (!rt_address_is_valid(probe))
                return log_error_errno(EINVAL, "RETHINK_STUB_TARGET: field 'domain': not a domain name.");

        r = hyperty_new(e, NULL, &s->hyperty);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the bus client (RETHINK_BUS, RETHINK_ADDRESS, token): %m");
        s->address = hyperty_get_address(s->hyperty);
        r = backoff_new(&(backoff_config) { .initial = RETRY_INITIAL_USEC, .max = RETRY_MAX_USEC }, &s->backoff);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the backoff: %m");
        s->token = (stub_token) { .hyperty = s->hyperty, .event = e, .handler = on_token, .userdata = s };
        hyperty_set_message_handler(s->hyperty, on_bus_message, s);
        hyperty_set_connectivity_handler(s->hyperty, on_connectivity, s);
        hyperty_set_state_handler(s->hyperty, on_bus_state, s);
        *ret = TAKE_PTR(s);
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(stub_freep) stub *s = NULL;
        int r;

        log_open();
        r = hyperty_event_new(&e);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m"), EXIT_FAILURE;
        r = stub_new(e, &s);
        if (r < 0)
                return EXIT_FAILURE;
        r = hyperty_connect(s->hyperty);
        if (r < 0) {
                log_error_errno(r, "Failed to connect to the bus: %m");
                return EXIT_FAILURE;
        }
        log_info("p2p protostub %s for %s (%s) started.", s->address, s->peer, s->domain);
        r = sd_event_loop(e);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
