/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The messaging protostub (docs/protostubs.md): one HTTP/2 session with a
 * domain's Messaging Service for the runtime address the agent gave it.
 *
 *   bus -> domain   every message the bus routes here is queued and
 *                   POSTed to /msg/sessions/<id>/messages, what is queued
 *                   at that moment in one NDJSON body;
 *                   messages to domain://registry.<D> become Global
 *                   Registry requests, answered with the HTTP status
 *   domain -> bus   every line of the session's stream is sent on the bus
 *
 * The token is the device's, read from the agent over the bus. A lost
 * session is re-opened after lib/backoff's delays; the domain keeps the
 * subscriptions per subscriber address, so re-opening is all it takes.
 * Nothing is tried while the agent says connectivity is offline. */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "backoff.h"
#include "h2-client.h"
#include "stub-common.h"
#include "tls.h"

#define REQUEST_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define RETRY_INITIAL_USEC (1 * USEC_PER_SEC)
#define RETRY_MAX_USEC (60 * USEC_PER_SEC)
/* A stream that lasted this long was a success: the backoff starts over. */
#define STREAM_HEALTHY_USEC (30 * USEC_PER_SEC)
/* While the session is down, what the bus sends waits here; past either
 * bound a request is answered 503 at once. */
#define QUEUE_MAX_MESSAGES 1000u
#define QUEUE_MAX_BYTES (1024u * 1024u)
/* One POST body; the Messaging Service takes up to 1 MiB. */
#define BATCH_MAX_BYTES (1024u * 1024u)
#define REGISTRY_MAX_BODY (256u * 1024u)

typedef enum phase {
        PHASE_WAIT,      /* no bus yet, or offline: nothing runs */
        PHASE_TOKEN,     /* asking the agent */
        PHASE_SESSION,   /* POST /msg/sessions */
        PHASE_STREAM,    /* GET the stream, no answer yet */
        PHASE_UP,        /* the stream is attached */
        PHASE_RETRY,     /* waiting for the backoff timer */
} phase;

static const char *const phase_names[] = {
        [PHASE_WAIT] = "wait", [PHASE_TOKEN] = "token", [PHASE_SESSION] = "session",
        [PHASE_STREAM] = "stream", [PHASE_UP] = "up", [PHASE_RETRY] = "retry",
};

typedef struct entry entry;
struct entry {
        entry *next;
        rt_message *m;
        char *line;           /* NDJSON line, with its \n */
        size_t size;
        bool registry;        /* to domain://registry.<D> */
        bool alone;           /* posted on its own (its batch was refused) */
};

typedef struct queue {
        entry *head, *tail;
        unsigned n;
        size_t bytes;
} queue;

typedef struct stub stub;

typedef struct registry_op {
        stub *stub;
        entry *e;
        H2ClientRequest *req;
        struct registry_op *next;
} registry_op;

struct stub {
        sd_event *event;
        hyperty *hyperty;
        stub_token token;
        const char *address;   /* runtime://<D>/<uuid>, owned by the hyperty */
        char *domain;
        char *registry;        /* domain://registry.<D> */
        char *url_string;
        stub_url url;
        SSL_CTX *tls;

        phase phase;
        bool offline;
        H2Client *client;
        H2ClientRequest *req;      /* session or stream */
        H2ClientRequest *post;     /* the batch in flight */
        queue batch;               /* what post carries */
        registry_op *ops;
        char *stream_path, *messages_path;
        usec_t stream_since;
        stub_lines lines;
        backoff *backoff;
        sd_event_source *retry_timer, *flush_defer;

        queue q;
        unsigned attempts;
        uint64_t to_bus, from_bus, lost_to_bus;
};

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

/* --- queue ------------------------------------------------------------------------------- */

static entry *entry_free(entry *e) {
        if (!e)
                return NULL;
        rt_message_free(e->m);
        free(e->line);
        free(e);
        return NULL;
}

static void queue_push(queue *q, entry *e) {
        e->next = NULL;
        if (q->tail)
                q->tail->next = e;
        else
                q->head = e;
        q->tail = e;
        q->n++;
        q->bytes += e->size;
}

static entry *queue_pop(queue *q) {
        entry *e = q->head;

        if (!e)
                return NULL;
        q->head = e->next;
        if (!q->head)
                q->tail = NULL;
        q->n--;
        q->bytes -= e->size;
        e->next = NULL;
        return e;
}

static void queue_push_front(queue *q, entry *e) {
        e->next = q->head;
        q->head = e;
        if (!q->tail)
                q->tail = e;
        q->n++;
        q->bytes += e->size;
}

/* Puts all of from back in front of q, in order. */
static void queue_requeue(queue *q, queue *from) {
        if (!from->head)
                return;
        from->tail->next = q->head;
        if (!q->tail)
                q->tail = from->tail;
        q->head = from->head;
        q->n += from->n;
        q->bytes += from->bytes;
        *from = (queue) {};
}

static void queue_clear(queue *q) {
        entry *e;

        while ((e = queue_pop(q)))
                entry_free(e);
}

/* --- connection -------------------------------------------------------------------------- */

static void schedule_flush(stub *s);
static void go_down(stub *s, const char *why, bool retry);
static void start(stub *s);

static void on_client_close(H2Client *c, int error, const char *reason, void *userdata) {
        stub *s = userdata;

        if (c == s->client && error < 0)
                log_debug("Connection to %s closed: %s%s%s", s->url_string, strerror(-error), reason ? ", " : "",
                          strempty(reason));
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
        config.max_response_body = REGISTRY_MAX_BODY;
        s->attempts++;
        /* Tests count these lines to prove there is no reconnect storm. */
        log_info("Connecting to the Messaging Service at %s (attempt %u).", s->url_string, s->attempts);
        r = h2_client_new(s->event, s->url.host, s->url.port, s->tls, NULL, &config, &client_callbacks, s,
                          &s->client);
        if (r < 0)
                return log_warning_errno(r, "Failed to connect to %s: %m", s->url_string);
        return 0;
}

static int auth_header(stub *s, char **ret) {
        const char *t = stub_token_get(&s->token);

        if (!t)
                return -ENOKEY;
        return asprintf(ret, "Bearer %s", t) < 0 ? -ENOMEM : 0;
}

static json_t *body_json(H2ClientRequest *req) {
        size_t size = 0;
        const uint8_t *b = h2_client_request_get_body(req, &size);

        return b && size > 0 ? json_loadb((const char *) b, size, 0, NULL) : NULL;
}

static char *http_error_text(H2ClientRequest *req, int status) {
        _cleanup_(json_decrefp) json_t *j = body_json(req);
        const char *d = json_string_value(json_object_get(j, "description"));
        char *t = NULL;

        if (asprintf(&t, "HTTP %d%s%s", status, d ? ": " : "", strempty(d)) < 0)
                return NULL;
        return t;
}

/* --- session and stream -------------------------------------------------------------------- */

static void deliver_line(const char *line, size_t len, void *userdata) {
        stub *s = userdata;
        _cleanup_rt_message_ rt_message *m = NULL;
        _cleanup_free_ char *reason = NULL;
        int r;

        r = rt_message_parse(line, len, NULL, &m, &reason);
        if (r < 0) {
                log_warning_errno(r, "Dropping an invalid message from the domain: %s", strna(reason));
                return;
        }
        /* Traffic on the stream: the session works. */
        backoff_reset(s->backoff);
        if (rt_message_get_n_to(m) == 1 && streq(rt_message_get_to(m, 0), s->address)) {
                /* For the stub itself: the domain's notices (dropped
                 * messages) and answers to nothing it asked. */
                if (streq_ptr(rt_message_get_attribute(m), "dropped"))
                        log_warning("The domain dropped messages for %s while it was away.", s->address);
                else
                        log_debug("Ignoring a %s for the protostub itself.",
                                  rt_message_type_to_string(rt_message_get_type(m)));
                return;
        }
        r = hyperty_send_message(s->hyperty, m);
        if (r < 0) {
                s->lost_to_bus++;
                log_warning_errno(r, "Lost a message from the domain for %s: bus not available: %m",
                                  strna(rt_message_get_to(m, 0)));
                return;
        }
        s->to_bus++;
}

static int on_stream_response(H2ClientRequest *req, int status, void *userdata) {
        stub *s = userdata;

        if (req != s->req || status != 200)
                return 0;
        s->phase = PHASE_UP;
        s->stream_since = now(CLOCK_MONOTONIC);
        log_info("Messaging session of %s open at %s (%u queued to send).", s->address, s->url_string, s->q.n);
        schedule_flush(s);
        return 0;
}

static int on_stream_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        stub *s = userdata;

        if (h2_client_request_get_status(req) != 200)
                return 0;
        return stub_lines_feed(&s->lines, data, size, deliver_line, s);
}

static void on_req_complete(H2ClientRequest *req, int error, void *userdata);

static const H2ClientRequestCallbacks session_callbacks = { .on_complete = on_req_complete };
static const H2ClientRequestCallbacks stream_callbacks = {
        .on_response = on_stream_response,
        .on_data = on_stream_data,
        .on_complete = on_req_complete,
};

static int send_session(stub *s) {
        _cleanup_free_ char *auth = NULL, *body = NULL;
        json_t *o;
        int r;

        r = auth_header(s, &auth);
        if (r < 0)
                return r;
        /* A protostub's runtime, not the device's: the domain sends device
         * management orders to the agent's own session. */
        o = json_pack("{s:s,s:b}", "runtime", s->address, "protostub", true);
        body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!body)
                return -ENOMEM;
        r = ensure_client(s);
        if (r < 0)
                return r;
        s->phase = PHASE_SESSION;
        s->req = h2_client_request_unref(s->req);
        r = h2_client_request(s->client, "POST", "/msg/sessions",
                              (const H2Header[]) { { "authorization", auth }, { "content-type", "application/json" } },
                              2, body, strlen(body), 0, &session_callbacks, s, &s->req);
        if (r < 0)
                return r;
        (void) h2_client_request_set_timeout(s->req, REQUEST_TIMEOUT_USEC);
        return 0;
}

static int send_stream(stub *s) {
        _cleanup_free_ char *auth = NULL;
        int r;

        r = auth_header(s, &auth);
        if (r < 0)
                return r;
        r = ensure_client(s);
        if (r < 0)
                return r;
        s->phase = PHASE_STREAM;
        s->lines.len = 0;
        s->req = h2_client_request_unref(s->req);
        r = h2_client_request(s->client, "GET", s->stream_path, (const H2Header[]) { { "authorization", auth } },
                              1, NULL, 0, 0, &stream_callbacks, s, &s->req);
        if (r < 0)
                return r;
        /* The stream lives as long as the domain keeps it. */
        (void) h2_client_request_set_timeout(s->req, 0);
        return 0;
}

static int session_done(stub *s, H2ClientRequest *req) {
        _cleanup_(json_decrefp) json_t *j = body_json(req);
        const char *stream = json_string_value(json_object_get(j, "stream"));
        const char *messages = json_string_value(json_object_get(j, "messages"));

        if (!stream || !messages || stream[0] != '/' || messages[0] != '/' || strpbrk(stream, "?# \r\n") ||
            strpbrk(messages, "?# \r\n"))
                return -EBADMSG;
        free(s->stream_path);
        free(s->messages_path);
        s->stream_path = strdup(stream);
        s->messages_path = strdup(messages);
        if (!s->stream_path || !s->messages_path)
                return -ENOMEM;
        return send_stream(s);
}

static void on_req_complete(H2ClientRequest *req, int error, void *userdata) {
        stub *s = userdata;
        _cleanup_free_ char *why = NULL;
        phase p = s->phase;
        int status, r;

        if (req != s->req)
                return;
        s->req = h2_client_request_unref(s->req);
        status = error < 0 ? 0 : h2_client_request_get_status(req);

        if (error < 0) {
                why = strdupf("%s: %s", phase_names[p], strerror(-error));
                go_down(s, why, true);
                return;
        }
        if (p == PHASE_SESSION && (status == 200 || status == 201)) {
                r = session_done(s, req);
                if (r < 0) {
                        why = strdupf("session answer unusable: %s", strerror(-r));
                        go_down(s, why, true);
                }
                return;
        }
        if (p == PHASE_UP) {
                /* Only a stream that lasted counts as a success. */
                if (now(CLOCK_MONOTONIC) - s->stream_since >= STREAM_HEALTHY_USEC)
                        backoff_reset(s->backoff);
                go_down(s, "the domain ended the stream", true);
                return;
        }
        why = http_error_text(req, status);
        /* 401: the token went bad (expired, the domain's key changed). */
        if (status == 401)
                stub_token_forget(&s->token);
        go_down(s, why ?: "refused", true);
}

/* --- POSTing messages ------------------------------------------------------------------------ */

static void answer_entries(stub *s, queue *q, int code, const char *description) {
        entry *e;

        while ((e = queue_pop(q))) {
                stub_answer(s->hyperty, e->m, code, description, NULL);
                entry_free(e);
        }
}

static void on_post_complete(H2ClientRequest *req, int error, void *userdata) {
        stub *s = userdata;
        _cleanup_free_ char *why = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        int status;

        if (req != s->post)
                return;
        s->post = h2_client_request_unref(s->post);
        status = error < 0 ? 0 : h2_client_request_get_status(req);

        if (status == 202) {
                queue_clear(&s->batch);
                schedule_flush(s);
                return;
        }
        if (status == 400 || status == 403 || status == 413) {
                /* The whole body was refused for one message in it: post
                 * each alone, so only the culprit gets the error. */
                if (s->batch.n > 1) {
                        for (entry *e = s->batch.head; e; e = e->next)
                                e->alone = true;
                        queue_requeue(&s->q, &s->batch);
                        schedule_flush(s);
                        return;
                }
                j = body_json(req);
                answer_entries(s, &s->batch, status, json_string_value(json_object_get(j, "description")));
                schedule_flush(s);
                return;
        }
        /* Not routed, or not known to be: sent again on the next session
         * (at least once: a message the domain took before a connection
         * broke may arrive twice). */
        queue_requeue(&s->q, &s->batch);
        if (error < 0)
                why = strdupf("posting messages: %s", strerror(-error));
        else
                why = http_error_text(req, status);
        if (status == 401)
                stub_token_forget(&s->token);
        go_down(s, why ?: "posting messages failed", true);
}

static const H2ClientRequestCallbacks post_callbacks = { .on_complete = on_post_complete };

static int post_batch(stub *s) {
        _cleanup_free_ char *auth = NULL, *body = NULL;
        size_t size = 0, off = 0;
        int r;

        if (s->post || !s->q.head || s->q.head->registry)
                return 0;
        r = auth_header(s, &auth);
        if (r < 0)
                return r;
        /* A refused batch is retried message by message. */
        if (s->q.head->alone)
                queue_push(&s->batch, queue_pop(&s->q));
        else
                while (s->q.head && !s->q.head->registry && !s->q.head->alone &&
                       (s->batch.n == 0 || s->batch.bytes + s->q.head->size <= BATCH_MAX_BYTES))
                        queue_push(&s->batch, queue_pop(&s->q));
        size = s->batch.bytes;
        body = malloc(size);
        if (!body) {
                queue_requeue(&s->q, &s->batch);
                return -ENOMEM;
        }
        for (entry *e = s->batch.head; e; e = e->next) {
                memcpy(body + off, e->line, e->size);
                off += e->size;
        }
        r = ensure_client(s);
        if (r >= 0)
                r = h2_client_request(s->client, "POST", s->messages_path,
                                      (const H2Header[]) { { "authorization", auth },
                                                           { "content-type", "application/x-ndjson" } },
                                      2, body, size, 0, &post_callbacks, s, &s->post);
        if (r < 0) {
                queue_requeue(&s->q, &s->batch);
                return r;
        }
        (void) h2_client_request_set_timeout(s->post, REQUEST_TIMEOUT_USEC);
        s->from_bus += s->batch.n;
        return 0;
}

/* --- the Global Registry --------------------------------------------------------------------- */

static registry_op *registry_op_free(registry_op *op) {
        if (!op)
                return NULL;
        if (op->req) {
                (void) h2_client_request_cancel(op->req);
                h2_client_request_unref(op->req);
        }
        entry_free(op->e);
        free(op);
        return NULL;
}

static void registry_op_unlink(stub *s, registry_op *op) {
        for (registry_op **p = &s->ops; *p; p = &(*p)->next)
                if (*p == op) {
                        *p = op->next;
                        return;
                }
}

static void on_registry_complete(H2ClientRequest *req, int error, void *userdata) {
        registry_op *op = userdata;
        stub *s = op->stub;
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *description = NULL;
        int status;

        registry_op_unlink(s, op);
        op->req = h2_client_request_unref(op->req);
        status = error < 0 ? 0 : h2_client_request_get_status(req);
        if (error < 0 || status == 401 || status >= 502) {
                /* Registry requests are idempotent (PUT, keep-alive,
                 * DELETE, GET): send again once the session is back. */
                queue_push(&s->q, TAKE_PTR(op->e));
                registry_op_free(op);
                if (status == 401)
                        stub_token_forget(&s->token);
                go_down(s, error < 0 ? "registry request lost" : "registry request refused", true);
                return;
        }
        j = body_json(req);
        if (status >= 400)
                description = json_string_value(json_object_get(j, "description"));
        if (status >= 100 && status <= 599)
                stub_answer(s->hyperty, op->e->m, status, description, status < 400 ? j : NULL);
        else
                stub_answer(s->hyperty, op->e->m, 502, "the registry gave no valid status", NULL);
        registry_op_free(op);
}

static const H2ClientRequestCallbacks registry_callbacks = { .on_complete = on_registry_complete };

/* The path of an entry from its url: hyperty://<D>/<uuid> or ctxt://<D>/<uuid>. */
static int registry_path(stub *s, const char *url, char **ret, const char **ret_reason) {
        _cleanup_rt_address_ rt_address *a = NULL;
        rt_address_scheme sch;
        const char *path;

        if (!url)
                return *ret_reason = "body.resource: missing, the url of the entry", -EINVAL;
        if (rt_address_parse(url, &a, NULL) < 0)
                return *ret_reason = "body.resource: not an address", -EINVAL;
        sch = rt_address_get_scheme(a);
        path = rt_address_get_path(a);
        if ((sch != RT_ADDRESS_HYPERTY && sch != RT_ADDRESS_CTXT) || !streq(rt_address_get_authority(a), s->domain) ||
            strchr(path, '/'))
                return *ret_reason = "body.resource: expected hyperty://<domain>/<uuid> or ctxt://<domain>/<uuid>",
                       -EINVAL;
        if (asprintf(ret, "/registry/%s/%s", sch == RT_ADDRESS_HYPERTY ? "hyperties" : "dataobjects", path) < 0)
                return -ENOMEM;
        return 0;
}

/* criteria -> ?k=v&...; values strings or integers. */
static int registry_query(json_t *criteria, const char *collection, char **ret, const char **ret_reason) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t len = 0;
        const char *k;
        json_t *v;
        char sep = '?';

        f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "/registry/%s", collection);
        json_object_foreach(criteria, k, v) {
                char num[32];
                const char *sv = json_string_value(v);

                if (json_is_integer(v)) {
                        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                        sv = num;
                }
                if (!sv)
                        return *ret_reason = "body.criteria: values must be strings or integers", -EINVAL;
                fputc(sep, f);
                stub_fput_pct(f, k);
                fputc('=', f);
                stub_fput_pct(f, sv);
                sep = '&';
        }
        if (fflush(f) != 0 || ferror(f))
                return -ENOMEM;
        fclose(TAKE_PTR(f));
        *ret = TAKE_PTR(buf);
        return 0;
}

/* Sends the Global Registry request for e; on a bad message answers 400
 * itself and returns 0. */
static int registry_send(stub *s, entry *e) {
        _cleanup_free_ char *path = NULL, *auth = NULL, *body = NULL;
        const char *method = NULL, *reason = NULL, *resource = rt_message_get_resource(e->m);
        json_t *criteria = rt_message_get_criteria(e->m);
        registry_op *op;
        int r;

        switch (rt_message_get_type(e->m)) {
        case RT_MESSAGE_CREATE: {
                _cleanup_(json_decrefp) json_t *record = NULL;
                json_t *value = rt_message_get_value(e->m);

                if (!resource && json_is_object(value))
                        resource = json_string_value(json_object_get(value, "url"));
                r = registry_path(s, resource, &path, &reason);
                if (r >= 0 && !json_is_object(value))
                        r = -EINVAL, reason = "body.value: expected the registry record";
                if (r >= 0) {
                        /* The hyperty is reachable through this runtime. */
                        record = json_deep_copy(value);
                        if (!record || json_object_set_new(record, "runtime", json_string(s->address)) < 0)
                                return -ENOMEM;
                        body = json_dumps(record, JSON_COMPACT);
                        if (!body)
                                return -ENOMEM;
                }
                method = "PUT";
                break;
        }
        case RT_MESSAGE_UPDATE:
                if (!streq_ptr(rt_message_get_attribute(e->m), "keepalive")) {
                        r = -EINVAL;
                        reason = "body.attribute: the registry takes only \"keepalive\" updates";
                        break;
                }
                r = registry_path(s, resource, &path, &reason);
                if (r >= 0) {
                        char *k = NULL;

                        if (asprintf(&k, "%s/keepalive", path) < 0)
                                return -ENOMEM;
                        free(path);
                        path = k;
                }
                method = "POST";
                break;
        case RT_MESSAGE_DELETE:
                r = registry_path(s, resource, &path, &reason);
                method = "DELETE";
                break;
        case RT_MESSAGE_READ:
                if (criteria || !resource)
                        r = registry_query(criteria ?: json_object(), streq_ptr(rt_message_get_attribute(e->m),
                                                                                "dataObjects")
                                                                              ? "dataobjects"
                                                                              : "hyperties",
                                           &path, &reason);
                else
                        r = registry_path(s, resource, &path, &reason);
                method = "GET";
                break;
        default:
                stub_answer(s->hyperty, e->m, 501, "the registry takes create, read, update (keepalive) and delete",
                            NULL);
                entry_free(e);
                return 0;
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                stub_answer(s->hyperty, e->m, 400, reason, NULL);
                entry_free(e);
                return 0;
        }
        r = auth_header(s, &auth);
        if (r < 0)
                return r;
        r = ensure_client(s);
        if (r < 0)
                return r;
        op = calloc(1, sizeof(*op));
        if (!op)
                return -ENOMEM;
        op->stub = s;
        r = h2_client_request(s->client, method, path,
                              (const H2Header[]) { { "authorization", auth }, { "content-type", "application/json" } },
                              body ? 2 : 1, body, body ? strlen(body) : 0, 0, &registry_callbacks, op, &op->req);
        if (r < 0) {
                free(op);
                return r;
        }
        (void) h2_client_request_set_timeout(op->req, REQUEST_TIMEOUT_USEC);
        op->e = e;
        op->next = s->ops;
        s->ops = op;
        s->from_bus++;
        return 0;
}

/* --- flushing -------------------------------------------------------------------------------- */

static int on_flush(sd_event_source *es, void *userdata) {
        stub *s = userdata;
        int r = 0;

        if (s->phase != PHASE_UP)
                return 0;
        /* Registry requests go out at once, each on its own stream;
         * messages in one POST at a time, in order. */
        while (r >= 0 && s->q.head && s->q.head->registry) {
                entry *e = queue_pop(&s->q);

                r = registry_send(s, e);
                if (r < 0)
                        queue_push_front(&s->q, e); /* for the next session */
        }
        if (r >= 0)
                r = post_batch(s);
        if (r < 0) {
                log_warning_errno(r, "Cannot send to the domain: %m");
                go_down(s, "sending failed", true);
        }
        return 0;
}

static void schedule_flush(stub *s) {
        int r;

        if (!s->flush_defer) {
                r = sd_event_add_defer(s->event, &s->flush_defer, on_flush, s);
                if (r < 0) {
                        log_warning_errno(r, "Failed to schedule sending: %m");
                        return;
                }
                (void) sd_event_source_set_enabled(s->flush_defer, SD_EVENT_ONESHOT);
                return;
        }
        (void) sd_event_source_set_enabled(s->flush_defer, SD_EVENT_ONESHOT);
}

/* --- the state machine ------------------------------------------------------------------------ */

static int on_retry(sd_event_source *es, uint64_t usec, void *userdata) {
        start(userdata);
        return 0;
}

/* Cancels what is in flight (keeping what was not sent) and, with retry,
 * tries again after the backoff delay. */
static void go_down(stub *s, const char *why, bool retry) {
        usec_t delay = RETRY_MAX_USEC;
        char buf[FORMAT_TIMESPAN_MAX];

        if (s->req) {
                (void) h2_client_request_cancel(s->req);
                s->req = h2_client_request_unref(s->req);
        }
        if (s->post) {
                (void) h2_client_request_cancel(s->post);
                s->post = h2_client_request_unref(s->post);
        }
        queue_requeue(&s->q, &s->batch);
        while (s->ops) {
                registry_op *op = s->ops;

                s->ops = op->next;
                queue_push(&s->q, TAKE_PTR(op->e));
                registry_op_free(op);
        }
        s->lines.len = 0;
        /* A connection that failed once is not trusted again. */
        s->client = h2_client_unref(s->client);
        if (s->retry_timer)
                (void) sd_event_source_set_enabled(s->retry_timer, SD_EVENT_OFF);

        if (!retry || s->offline || !hyperty_is_connected(s->hyperty)) {
                s->phase = PHASE_WAIT;
                if (why)
                        log_info("Messaging session of %s paused: %s.", s->address, why);
                return;
        }
        (void) backoff_next_delay(s->backoff, &delay);
        s->phase = PHASE_RETRY;
        log_warning("Messaging session of %s down (%s); retrying in %s.", s->address, strna(why),
                    format_timespan_exact(buf, sizeof(buf), delay));
        (void) event_reset_time_relative(s->event, &s->retry_timer, delay, on_retry, s, "stub-retry");
}

static void start(stub *s) {
        int r;

        if (s->offline || !hyperty_is_connected(s->hyperty)) {
                s->phase = PHASE_WAIT;
                return;
        }
        if (!stub_token_get(&s->token)) {
                s->phase = PHASE_TOKEN;
                r = stub_token_ask(&s->token);
                if (r < 0)
                        go_down(s, "cannot ask the agent for a token", true);
                return;
        }
        r = send_session(s);
        if (r < 0) {
                _cleanup_free_ char *why = NULL;

                why = strdupf("cannot open the session: %s", strerror(-r));
                go_down(s, why, true);
        }
}

static void on_token(stub_token *t, int code, void *userdata) {
        stub *s = userdata;

        if (code != 200) {
                if (s->phase == PHASE_TOKEN)
                        go_down(s, "the agent gave no token", true);
                return;
        }
        /* A refreshed token serves what follows; a running session keeps
         * going. */
        if (s->phase == PHASE_TOKEN)
                start(s);
}

/* --- the bus -------------------------------------------------------------------------------- */

static void on_bus_message(hyperty *h, const rt_message *m, void *userdata) {
        stub *s = userdata;
        _cleanup_free_ char *json = NULL;
        entry *e;
        size_t size;
        int r;

        if (rt_message_get_n_to(m) == 1 && streq(rt_message_get_to(m, 0), s->address)) {
                stub_answer(h, m, 501, "the messaging protostub takes no requests itself", NULL);
                return;
        }
        r = rt_message_to_json(m, &json);
        if (r < 0) {
                stub_answer(h, m, 500, "cannot serialise the message", NULL);
                return;
        }
        size = strlen(json) + 1;
        if (s->q.n >= QUEUE_MAX_MESSAGES || s->q.bytes + size > QUEUE_MAX_BYTES) {
                log_notice("Queue for the domain full (%u messages): refusing a %s.", s->q.n,
                           rt_message_type_to_string(rt_message_get_type(m)));
                stub_answer(h, m, 503, "the domain is not reachable and the protostub's queue is full", NULL);
                return;
        }
        e = calloc(1, sizeof(*e));
        if (!e || asprintf(&e->line, "%s\n", json) < 0) {
                free(e);
                stub_answer(h, m, 500, "out of memory", NULL);
                return;
        }
        e->size = size;
        e->registry = rt_message_get_n_to(m) == 1 && streq(rt_message_get_to(m, 0), s->registry);
        /* rt_message has no copy: a parse of our own serialisation is one. */
        r = rt_message_parse(e->line, e->size, &(rt_message_limits) { .max_size = SIZE_MAX / 2 }, &e->m, NULL);
        if (r < 0) {
                entry_free(e);
                stub_answer(h, m, 500, "cannot copy the message", NULL);
                return;
        }
        queue_push(&s->q, e);
        if (s->phase == PHASE_UP)
                schedule_flush(s);
}

static void on_connectivity(hyperty *h, const char *state, void *userdata) {
        stub *s = userdata;
        bool offline = streq_ptr(state, "offline");

        if (offline == s->offline)
                return;
        s->offline = offline;
        if (offline) {
                log_info("Connectivity is offline: no connection to %s until it is back.", s->url_string);
                go_down(s, "connectivity offline", false);
                return;
        }
        /* Back: at once, with a fresh backoff. */
        log_info("Connectivity is %s: reconnecting to %s now.", state, s->url_string);
        backoff_reset(s->backoff);
        if (s->phase == PHASE_WAIT || s->phase == PHASE_RETRY)
                start(s);
}

static void on_bus_state(hyperty *h, bool connected, void *userdata) {
        stub *s = userdata;
        const char *c;

        if (!connected) {
                log_notice("Lost the bus; the domain session stays up.");
                return;
        }
        c = hyperty_get_connectivity(h);
        s->offline = streq_ptr(c, "offline");
        if (s->phase == PHASE_WAIT)
                start(s);
}

/* --- main ----------------------------------------------------------------------------------- */

static stub *stub_free(stub *s) {
        if (!s)
                return NULL;
        go_down(s, NULL, false);
        queue_clear(&s->q);
        stub_token_done(&s->token);
        sd_event_source_disable_unref(s->retry_timer);
        sd_event_source_disable_unref(s->flush_defer);
        hyperty_free(s->hyperty);
        if (s->tls)
                SSL_CTX_free(s->tls);
        backoff_free(s->backoff);
        free(s->lines.buf);
        free(s->domain);
        free(s->registry);
        free(s->url_string);
        free(s->stream_path);
        free(s->messages_path);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(stub *, stub_free);

static int stub_new(sd_event *e, stub **ret) {
        _cleanup_(stub_freep) stub *s = NULL;
        _cleanup_(json_decrefp) json_t *target = NULL;
        _cleanup_rt_address_ rt_address *a = NULL;
        const char *domain, *url;
        int r;

        r = stub_target_load(&target);
        if (r < 0)
                return r;
        domain = stub_target_string(target, "domain", true);
        url = stub_target_string(target, "domainUrl", true);
        if (!domain || !url)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return log_oom();
        s->event = sd_event_ref(e);
        r = stub_target_endpoint(target, "domainUrl", &s->url, &s->tls);
        if (r < 0)
                return r;
        s->url_string = strdup(url);
        s->domain = strdup(domain);
        if (!s->url_string || !s->domain || asprintf(&s->registry, "domain://registry.%s", domain) < 0)
                return log_oom();
        if (!rt_address_is_valid(s->registry))
                return log_error_errno(EINVAL, "RETHINK_STUB_TARGET: field 'domain': not a domain name.");

        r = hyperty_new(e, NULL, &s->hyperty);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the bus client (RETHINK_BUS, RETHINK_ADDRESS, token): %m");
        s->address = hyperty_get_address(s->hyperty);
        if (rt_address_parse(s->address, &a, NULL) < 0 || rt_address_get_scheme(a) != RT_ADDRESS_RUNTIME ||
            !streq(rt_address_get_authority(a), domain))
                return log_error_errno(EINVAL, "RETHINK_ADDRESS: expected runtime://%s/<uuid>.", domain);

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
        log_info("Messaging protostub %s for %s (%s) started.", s->address, s->domain, s->url_string);
        r = sd_event_loop(e);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
