/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <search.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "db.h"
#include "id.h"
#include "log.h"
#include "msg.h"
#include "rd.h"
#include "senml.h"
#include "time-util.h"

/* Backlog on an attached stream (the peer reads slower than we write)
 * waits in the session's queue until the server's queue for the stream
 * is down to this. */
#define MSG_STREAM_LOW_WATER (256u * 1024u)

/* msg.db. Version 1: who owns which runtime, and the resource
 * directory's tables (rd.c owns their SQL). */
static const char *const migrations[] = {
        "CREATE TABLE runtimes ("
        "  runtime TEXT PRIMARY KEY,"
        "  owner TEXT NOT NULL,"
        "  created_usec INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        "CREATE TABLE resources ("
        "  resource TEXT PRIMARY KEY,"
        "  reporter TEXT,"
        "  reporter_runtime TEXT,"
        "  value TEXT,"
        "  updated_usec INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        "CREATE TABLE subscriptions ("
        "  resource TEXT NOT NULL,"
        "  subscriber TEXT NOT NULL,"
        "  runtime TEXT NOT NULL,"
        "  created_usec INTEGER NOT NULL,"
        "  PRIMARY KEY (resource, subscriber)"
        ") WITHOUT ROWID;",
        /* Version 2: runtimes a device's protostub opened (e.g. its
         * messaging protostub) are not the device's own runtime, which
         * device management sends its orders to. */
        "ALTER TABLE runtimes ADD COLUMN protostub INTEGER NOT NULL DEFAULT 0;",
};

typedef struct session session;

/* Ties a stream to its session for as long as both exist: the router
 * frees it when the stream is gone, the session clears its pointer when
 * it goes first. */
typedef struct stream_att {
        msg *msg;
        session *session;
        route_request *rr;
} stream_att;

struct session {
        char id[ID_UUID_STRING_MAX]; /* first: key of sessions_by_id */
        char *runtime;
        char *owner;
        char *credential; /* the Authorization value last accepted */
        uint64_t credential_expiry;
        char **queue; /* ring of NDJSON lines (with "\n") */
        size_t q_head, q_len, q_alloc, q_bytes;
        uint64_t dropped;
        stream_att *att;
        uint64_t detached_usec; /* CLOCK_MONOTONIC; when att went away */
        char **hyperties; /* announced through this session */
        size_t n_hyperties;
        msg *msg;
};

/* A POST whose publications wait for their last values' commit: its 202
 * goes out after the commit, so an acknowledged publication survives a
 * SIGKILL like every other 2xx of the domain. */
typedef struct pending_ack {
        msg *msg; /* NULL once answered */
        route_request *rr;
        size_t n_accepted;
        struct pending_ack *prev, *next;
} pending_ack;

typedef struct hyperty_entry {
        char *hyperty; /* first: tree key */
        char *runtime;
} hyperty_entry;

struct msg {
        sd_event *event;
        db *db;
        rd *rd;
        char *domain;
        char *sm_address;
        void *sessions_by_id, *sessions_by_runtime, *hyperties;
        size_t n_sessions;
        size_t queue_max;
        uint64_t session_idle_usec;
        sd_event_source *idle_timer;
        uint64_t next_id;
        msg_auth_fn auth;
        msg_auth_expiry_fn auth_expiry;
        void *auth_userdata;
        msg_hyperty_lookup_fn lookup;
        void *lookup_userdata;
        pending_ack *pending;
        struct {
                char *address;
                msg_service_fn fn;
                void *userdata;
        } services[MSG_SERVICES_MAX];
        size_t n_services;
        msg_stream_fn stream_fn;
        void *stream_userdata;
};

static int compare_str(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int compare_session_id(const void *a, const void *b) {
        return strcmp(((const session *) a)->id, ((const session *) b)->id);
}

static int compare_session_runtime(const void *a, const void *b) {
        return strcmp(((const session *) a)->runtime, ((const session *) b)->runtime);
}

static session *session_by_id(msg *m, const char *id) {
        session key = {};
        void *n;

        if (strlen(id) >= sizeof(key.id))
                return NULL;
        strcpy(key.id, id);
        n = tfind(&key, &m->sessions_by_id, compare_session_id);
        return n ? *(session **) n : NULL;
}

static session *session_by_runtime(msg *m, const char *runtime) {
        session key = { .runtime = (char *) runtime };
        void *n = tfind(&key, &m->sessions_by_runtime, compare_session_runtime);
        return n ? *(session **) n : NULL;
}

static void queue_clear(session *s) {
        for (size_t i = 0; i < s->q_len; i++)
                free(s->queue[(s->q_head + i) % s->q_alloc]);
        s->q_head = s->q_len = s->q_bytes = 0;
}

static void idle_arm(msg *m);

static void session_detach(session *s) {
        if (!s->att)
                return;
        s->att->session = NULL;
        s->att = NULL;
        s->detached_usec = now(CLOCK_MONOTONIC);
        idle_arm(s->msg);
}

static void session_free(session *s) {
        if (!s)
                return;
        if (s->att) {
                /* Ends the stream cleanly: the runtime sees the body end
                 * and knows to re-open. */
                (void) h2_request_end(route_request_get_request(s->att->rr));
                s->att->session = NULL;
                s->att = NULL;
        }
        queue_clear(s);
        free(s->queue);
        for (size_t i = 0; i < s->n_hyperties; i++)
                free(s->hyperties[i]);
        free(s->hyperties);
        free(s->runtime);
        free(s->owner);
        if (s->credential)
                explicit_bzero_safe(s->credential, strlen(s->credential));
        free(s->credential);
        free(s);
}

static void hyperty_entry_free(void *p) {
        hyperty_entry *h = p;

        free(h->hyperty);
        free(h->runtime);
        free(h);
}

static void noop_free(void *p) {
}

static void pending_unlink(pending_ack *p) {
        if (!p->msg)
                return;
        if (p->prev)
                p->prev->next = p->next;
        else
                p->msg->pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        p->prev = p->next = NULL;
        p->msg = NULL;
}

static void pending_free(void *userdata) {
        pending_ack *p = userdata;

        pending_unlink(p);
        free(p);
}

static void on_flushed(int error, void *userdata) {
        msg *m = userdata;

        while (m->pending) {
                pending_ack *p = m->pending;
                route_request *rr = p->rr;
                json_t *answer;
                int r;

                pending_unlink(p);
                if (error < 0) {
                        (void) route_respond_error(rr, 500, "failed to store the last value");
                        continue;
                }
                answer = json_pack("{s:I}", "accepted", (json_int_t) p->n_accepted);
                r = answer ? route_respond_json(rr, 202, answer, NULL, 0) : -ENOMEM;
                json_decref(answer);
                if (r < 0 && r != -ENOTCONN)
                        log_debug_errno(r, "Failed to acknowledge a publication: %m");
        }
}

int msg_new(sd_event *e, const char *domain_name, const char *state_dir, msg **ret) {
        _cleanup_free_ char *path = NULL, *reason = NULL;
        msg *m;
        int r;

        if (!e || !domain_name || !*domain_name || !state_dir || !ret)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        m->queue_max = MSG_QUEUE_MAX_DEFAULT;
        m->session_idle_usec = MSG_SESSION_IDLE_USEC_DEFAULT;
        m->next_id = 1;
        m->domain = strdup(domain_name);
        if (!m->domain || asprintf(&m->sm_address, "domain://msg-node.%s/sm", domain_name) < 0) {
                m->sm_address = NULL;
                r = -ENOMEM;
                goto fail;
        }
        if (!rt_address_is_valid(m->sm_address)) {
                r = log_error_errno(EINVAL, "Domain name '%s' does not make a valid address.", domain_name);
                goto fail;
        }
        if (asprintf(&path, "%s/" MSG_DB_FILE_NAME, state_dir) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        r = db_open(path, DB_OPEN_MKDIR, &m->db, &reason);
        if (r < 0) {
                log_error_errno(r, "Failed to open %s: %s", path, reason ?: strerror(-r));
                goto fail;
        }
        r = db_migrate(m->db, migrations, ELEMENTSOF(migrations));
        if (r < 0) {
                log_error_errno(r, "Failed to migrate %s: %s", path, db_last_error(m->db));
                goto fail;
        }
        r = rd_new(e, m->db, &m->rd);
        if (r < 0) {
                log_error_errno(r, "Failed to load the resource directory from %s: %s", path, db_last_error(m->db));
                goto fail;
        }
        rd_set_flush_handler(m->rd, on_flushed, m);
        *ret = m;
        return 0;
fail:
        msg_free(m);
        return r;
}

msg *msg_free(msg *m) {
        if (!m)
                return NULL;
        sd_event_source_disable_unref(m->idle_timer);
        rd_set_flush_handler(m->rd, NULL, NULL);
        while (m->pending)
                pending_unlink(m->pending);
        tdestroy(m->sessions_by_runtime, noop_free);
        tdestroy(m->sessions_by_id, (void (*)(void *)) session_free);
        tdestroy(m->hyperties, hyperty_entry_free);
        rd_free(m->rd);
        db_close(m->db);
        for (size_t i = 0; i < m->n_services; i++)
                free(m->services[i].address);
        free(m->sm_address);
        free(m->domain);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

void msg_set_auth(msg *m, msg_auth_fn fn, void *userdata) {
        m->auth = fn;
        m->auth_expiry = NULL;
        m->auth_userdata = userdata;
}

void msg_set_auth_expiry(msg *m, msg_auth_expiry_fn fn, void *userdata) {
        m->auth = NULL;
        m->auth_expiry = fn;
        m->auth_userdata = userdata;
}

void msg_set_hyperty_lookup(msg *m, msg_hyperty_lookup_fn fn, void *userdata) {
        m->lookup = fn;
        m->lookup_userdata = userdata;
}

void msg_set_queue_max(msg *m, size_t n) {
        m->queue_max = MAX(n, (size_t) 1);
}

void msg_set_session_idle(msg *m, uint64_t usec) {
        m->session_idle_usec = MAX(usec, USEC_PER_SEC);
        if (m->idle_timer)
                (void) sd_event_source_set_enabled(m->idle_timer, SD_EVENT_OFF);
        idle_arm(m);
}

int msg_add_service(msg *m, const char *address, msg_service_fn fn, void *userdata) {
        if (!m || !address || !fn || strncmp(address, "domain://", 9) != 0 || !rt_address_is_valid(address))
                return -EINVAL;
        if (streq(address, m->sm_address))
                return -EEXIST;
        for (size_t i = 0; i < m->n_services; i++)
                if (streq(m->services[i].address, address))
                        return -EEXIST;
        if (m->n_services >= MSG_SERVICES_MAX)
                return -ENOSPC;
        m->services[m->n_services].address = strdup(address);
        if (!m->services[m->n_services].address)
                return -ENOMEM;
        m->services[m->n_services].fn = fn;
        m->services[m->n_services].userdata = userdata;
        m->n_services++;
        return 0;
}

void msg_set_stream_handler(msg *m, msg_stream_fn fn, void *userdata) {
        m->stream_fn = fn;
        m->stream_userdata = userdata;
}

int msg_get_runtime_of(msg *m, const char *owner, char **ret) {
        sqlite3_stmt *st;
        int r;

        if (!m || !owner || !ret)
                return -EINVAL;
        r = db_prepare(m->db, "SELECT runtime FROM runtimes WHERE owner = ?1 AND protostub = 0 "
                       "ORDER BY created_usec DESC LIMIT 1", &st);
        if (r >= 0)
                r = db_bind_text(m->db, st, 1, owner);
        if (r >= 0)
                r = db_step(m->db, st);
        if (r <= 0)
                return r;
        *ret = strdup((const char *) sqlite3_column_text(st, 0));
        db_reset(st);
        return *ret ? 1 : -ENOMEM;
}

const char *msg_get_sm_address(msg *m) {
        return m->sm_address;
}

size_t msg_get_n_sessions(msg *m) {
        return m->n_sessions;
}

/* --- delivery ------------------------------------------------------------------ */

static int session_flush(session *s);

/* Takes line (with its "\n"). The oldest line makes room when full. */
static int queue_push(session *s, char *line) {
        size_t max = s->msg->queue_max, len = strlen(line);

        if (s->q_len == s->q_alloc && s->q_alloc < max) {
                size_t a = MIN(MAX(s->q_alloc * 2, (size_t) 16), max);
                char **q = malloc(a * sizeof(char *));

                if (!q) {
                        free(line);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < s->q_len; i++)
                        q[i] = s->queue[(s->q_head + i) % s->q_alloc];
                free(s->queue);
                s->queue = q;
                s->q_alloc = a;
                s->q_head = 0;
        }
        while (s->q_len > 0 && (s->q_len >= MIN(max, s->q_alloc) || s->q_bytes + len > MSG_QUEUE_MAX_BYTES)) {
                s->q_bytes -= strlen(s->queue[s->q_head]);
                free(s->queue[s->q_head]);
                s->q_head = (s->q_head + 1) % s->q_alloc;
                s->q_len--;
                s->dropped++;
        }
        s->queue[(s->q_head + s->q_len) % s->q_alloc] = line;
        s->q_len++;
        s->q_bytes += len;
        return 0;
}

/* 0 written, -EAGAIN keep it (backlog), -ENOTCONN the stream is gone. */
static int stream_write(session *s, const char *line, size_t len) {
        H2Request *req = route_request_get_request(s->att->rr);
        int r;

        r = h2_request_write(req, line, len);
        if (r == -ENOBUFS)
                return -EAGAIN;
        if (r < 0) {
                log_debug_errno(r, "Stream of session %s is gone: %m", s->id);
                session_detach(s);
                return -ENOTCONN;
        }
        return 0;
}

static int send_dropped_notice(session *s) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_rt_message_ rt_message *n = NULL;
        _cleanup_free_ char *json = NULL, *line = NULL;
        int r;

        body = json_pack("{s:s,s:I}", "attribute", "dropped", "value", (json_int_t) s->dropped);
        if (!body)
                return -ENOMEM;
        r = rt_message_new(RT_MESSAGE_EXECUTE, s->msg->next_id++, s->msg->sm_address, s->runtime, body, &n);
        if (r >= 0)
                r = rt_message_to_json(n, &json);
        if (r < 0)
                return r;
        if (asprintf(&line, "%s\n", json) < 0)
                return -ENOMEM;
        r = stream_write(s, line, strlen(line));
        if (r < 0)
                return r;
        log_info("Session %s of %s: told the runtime that %" PRIu64 " queued messages were dropped.", s->id,
                 s->runtime, s->dropped);
        s->dropped = 0;
        return 0;
}

/* Writes the queue to the attached stream as far as it takes it, then the
 * dropped count once the queue is empty. */
static int session_flush(session *s) {
        while (s->att && s->q_len > 0) {
                char *line = s->queue[s->q_head];
                int r = stream_write(s, line, strlen(line));

                if (r < 0)
                        /* -EAGAIN: the drain handler calls again. */
                        return 0;
                s->q_bytes -= strlen(line);
                free(line);
                s->q_head = (s->q_head + 1) % s->q_alloc;
                s->q_len--;
        }
        if (s->att && s->dropped > 0)
                (void) send_dropped_notice(s);
        return 0;
}

/* line: one NDJSON line with its "\n"; copied. */
static int session_deliver(session *s, const char *line, size_t len) {
        char *copy;

        if (s->att && s->q_len == 0) {
                int r = stream_write(s, line, len);
                if (r == 0)
                        return 0;
        }
        copy = strndup(line, len);
        if (!copy)
                return -ENOMEM;
        return queue_push(s, copy);
}

static int session_deliver_message(session *s, const rt_message *message) {
        _cleanup_free_ char *json = NULL;
        size_t n;
        int r;

        r = rt_message_to_json(message, &json);
        if (r < 0)
                return r;
        n = strlen(json);
        /* Room for the "\n": rt_message_to_json() gives a malloc()ed
         * string we can grow. */
        {
                char *p = realloc(json, n + 2);
                if (!p)
                        return -ENOMEM;
                json = p;
        }
        json[n] = '\n';
        json[n + 1] = '\0';
        return session_deliver(s, json, n + 1);
}

/* --- routing ------------------------------------------------------------------------ */

static bool has_scheme(const char *address, const char *scheme) {
        size_t n = strlen(scheme);
        return strncmp(address, scheme, n) == 0 && strncmp(address + n, "://", 3) == 0;
}

static int hyperty_runtime(msg *m, const char *hyperty, char **ret) {
        hyperty_entry *h;
        void *n;
        int r;

        if (m->lookup) {
                r = m->lookup(hyperty, ret, m->lookup_userdata);
                if (r != 0)
                        return r;
        }
        n = tfind(&hyperty, &m->hyperties, compare_str);
        if (!n)
                return 0;
        h = *(hyperty_entry **) n;
        *ret = strdup(h->runtime);
        return *ret ? 1 : -ENOMEM;
}

/* The session a runtime:// or hyperty:// address is reached through. */
static session *session_for_address(msg *m, const char *address) {
        _cleanup_free_ char *runtime = NULL;

        if (has_scheme(address, "runtime"))
                return session_by_runtime(m, address);
        if (has_scheme(address, "hyperty") && hyperty_runtime(m, address, &runtime) > 0)
                return session_by_runtime(m, runtime);
        return NULL;
}

/* Answers request on the sender's session. Responses are never answered
 * (two peers would bounce errors forever): those are logged instead. */
static void reply(msg *m, session *sender, const rt_message *request, const char *responder, int code,
                  const char *description, json_t *value) {
        _cleanup_rt_message_ rt_message *resp = NULL;
        int r;

        if (rt_message_get_type(request) == RT_MESSAGE_RESPONSE) {
                log_debug("Undeliverable response %" PRIu64 " from %s to %s: %s", rt_message_get_id(request),
                          rt_message_get_from(request), strna(responder), strna(description));
                return;
        }
        if (code >= 400)
                r = rt_message_new_error(request, responder, code, description, &resp);
        else
                r = rt_message_new_response(request, responder, code, description, value, &resp);
        if (r >= 0 && sender)
                r = session_deliver_message(sender, resp);
        else if (r >= 0)
                /* From another domain service: route the answer like any
                 * message. */
                r = msg_send(m, resp);
        if (r < 0)
                log_warning_errno(r, "Failed to answer message %" PRIu64 " from %s with %d: %m",
                                  rt_message_get_id(request), rt_message_get_from(request), code);
}

typedef struct fanout {
        msg *msg;
        const char *resource;
        const char *value_json;
        unsigned delivered, away;
} fanout;

static int fanout_one(const char *subscriber, const char *runtime, void *userdata) {
        fanout *f = userdata;
        _cleanup_free_ char *line = NULL;
        session *s;
        int n;

        s = session_by_runtime(f->msg, runtime);
        if (!s) {
                f->away++;
                return 0;
        }
        /* Built as text: addresses passed rt_address validation, which
         * admits no character that JSON would have to escape, and the
         * value is already compact JSON. */
        n = asprintf(&line,
                     "{\"id\":%" PRIu64 ",\"type\":\"update\",\"from\":\"%s\",\"to\":\"%s\","
                     "\"body\":{\"resource\":\"%s\",\"value\":%s}}\n",
                     f->msg->next_id++, f->resource, subscriber, f->resource, f->value_json);
        if (n < 0) {
                line = NULL;
                return -ENOMEM;
        }
        f->delivered++;
        return session_deliver(s, line, (size_t) n);
}

static int publish(msg *m, const char *resource, const char *reporter, const char *runtime, json_t *value) {
        _cleanup_free_ char *text = NULL;
        fanout f = { .msg = m, .resource = resource };
        int r;

        r = rd_publish(m->rd, resource, reporter, runtime, value);
        if (r < 0)
                return r;
        text = json_dumps(value, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        f.value_json = text;
        r = rd_foreach_subscriber(m->rd, resource, fanout_one, &f);
        if (r < 0)
                return r;
        log_debug("Published %s from %s: %u subscribers reached, %u without a session.", resource, reporter,
                  f.delivered, f.away);
        return 0;
}

static bool value_is_valid(msg *m, session *sender, const rt_message *request, const char *resource) {
        json_t *value = rt_message_get_value(request);
        const char *why = NULL;
        _cleanup_free_ char *d = NULL;

        if (!value) {
                reply(m, sender, request, resource, 400, "body.value: missing, expected a SenML pack", NULL);
                return false;
        }
        if (senml_check(value, &why) < 0) {
                if (asprintf(&d, "body.value: %s", why) < 0)
                        d = NULL;
                reply(m, sender, request, resource, 400, d ?: why, NULL);
                return false;
        }
        return true;
}

static int subscribe(msg *m, session *sender, const rt_message *request, const char *responder,
                     const char *resource) {
        const char *from = rt_message_get_from(request);
        json_t *value = NULL;
        int r;

        if (!resource || !has_scheme(resource, "ctxt")) {
                reply(m, sender, request, responder, 400, "body.resource: expected a ctxt:// address", NULL);
                return 0;
        }
        if (!sender) {
                reply(m, sender, request, responder, 400, "subscriptions are for runtime sessions", NULL);
                return 0;
        }
        if (rt_message_get_type(request) == RT_MESSAGE_UNSUBSCRIBE) {
                r = rd_unsubscribe(m->rd, resource, from);
                if (r == -ENOENT) {
                        reply(m, sender, request, responder, 404, "no such subscription", NULL);
                        return 0;
                }
                if (r < 0)
                        return r;
                log_info("%s unsubscribed from %s.", from, resource);
                reply(m, sender, request, responder, 200, "unsubscribed", NULL);
                return 0;
        }
        r = rd_subscribe(m->rd, resource, from, sender->runtime);
        if (r < 0)
                return r;
        if (r > 0)
                log_info("%s subscribed to %s.", from, resource);
        (void) rd_get(m->rd, resource, &value, NULL, NULL);
        reply(m, sender, request, responder, 200, "subscribed", value);
        return 0;
}

static int to_subscription_manager(msg *m, session *sender, const rt_message *request) {
        rt_message_type t = rt_message_get_type(request);

        if (t == RT_MESSAGE_SUBSCRIBE || t == RT_MESSAGE_UNSUBSCRIBE)
                return subscribe(m, sender, request, m->sm_address, rt_message_get_resource(request));
        reply(m, sender, request, m->sm_address, 400, "the subscription manager takes subscribe and unsubscribe",
              NULL);
        return 0;
}

static int to_resource(msg *m, session *sender, const rt_message *request, const char *resource) {
        const char *from = rt_message_get_from(request), *reporter = NULL, *reporter_runtime = NULL;
        rt_message_type t = rt_message_get_type(request);
        json_t *value = NULL;
        bool known;
        session *target;
        int r;

        known = rd_get(m->rd, resource, &value, &reporter, &reporter_runtime) >= 0;

        switch (t) {
        case RT_MESSAGE_READ:
                if (!value) {
                        reply(m, sender, request, resource, 404, "no value published for this resource", NULL);
                        return 0;
                }
                reply(m, sender, request, resource, 200, NULL, value);
                return 0;

        case RT_MESSAGE_SUBSCRIBE:
        case RT_MESSAGE_UNSUBSCRIBE:
                return subscribe(m, sender, request, resource, resource);

        case RT_MESSAGE_CREATE:
        case RT_MESSAGE_UPDATE:
                if (!reporter || streq(reporter, from)) {
                        /* The reporter publishes; the first create (or
                         * update) of a resource makes its sender the
                         * reporter. */
                        if (!sender) {
                                reply(m, sender, request, resource, 403, "publications come from runtime sessions",
                                      NULL);
                                return 0;
                        }
                        if (!value_is_valid(m, sender, request, resource))
                                return 0;
                        r = publish(m, resource, from, sender->runtime, rt_message_get_value(request));
                        if (r < 0)
                                return r;
                        if (t == RT_MESSAGE_CREATE)
                                reply(m, sender, request, resource, 200, "created", NULL);
                        return 0;
                }
                if (t == RT_MESSAGE_CREATE) {
                        reply(m, sender, request, resource, 403, "the resource is reported by another", NULL);
                        return 0;
                }
                /* Actuation: an update from anyone but the reporter goes to
                 * the reporter, which answers the sender itself. */
                if (!value_is_valid(m, sender, request, resource))
                        return 0;
                target = session_by_runtime(m, reporter_runtime);
                if (!target) {
                        reply(m, sender, request, resource, 404, "the reporter of this resource has no session", NULL);
                        return 0;
                }
                return session_deliver_message(target, request);

        case RT_MESSAGE_DELETE:
                if (!known) {
                        reply(m, sender, request, resource, 404, "no such resource", NULL);
                        return 0;
                }
                if (!streq_ptr(reporter, from)) {
                        reply(m, sender, request, resource, 403, "only the reporter deletes a resource", NULL);
                        return 0;
                }
                r = rd_remove(m->rd, resource);
                if (r < 0)
                        return r;
                reply(m, sender, request, resource, 200, "deleted", NULL);
                return 0;

        default:
                reply(m, sender, request, resource, 400,
                      "a context resource takes create, read, update, delete, subscribe and unsubscribe", NULL);
                return 0;
        }
}

static int service_index(msg *m, const char *address) {
        for (size_t i = 0; i < m->n_services; i++)
                if (streq(m->services[i].address, address))
                        return (int) i;
        return -ENOENT;
}

/* Routes to every recipient; delivery errors go back to the sender as
 * error responses. Negative only for local failures (out of memory, the
 * database). */
static int route_message(msg *m, session *sender, const rt_message *message) {
        size_t n_to = rt_message_get_n_to(message);

        for (size_t i = 0; i < n_to; i++) {
                const char *to = rt_message_get_to(message, i);
                session *target;
                int r = 0, k;

                if (has_scheme(to, "ctxt"))
                        r = to_resource(m, sender, message, to);
                else if (streq(to, m->sm_address))
                        r = to_subscription_manager(m, sender, message);
                else if ((k = service_index(m, to)) >= 0)
                        m->services[k].fn(message, sender ? sender->runtime : NULL, sender ? sender->owner : NULL,
                                          m->services[k].userdata);
                else if ((target = session_for_address(m, to)))
                        r = session_deliver_message(target, message);
                else
                        reply(m, sender, message, to, 404,
                              has_scheme(to, "runtime") || has_scheme(to, "hyperty")
                                      ? "destination unknown or without a session"
                                      : "unknown destination",
                              NULL);
                if (r < 0) {
                        reply(m, sender, message, to, 500, "internal error", NULL);
                        return r;
                }
        }
        return 0;
}

int msg_publish(msg *m, const char *resource, const char *reporter, json_t *value) {
        const char *current = NULL;

        if (!m || !resource || !reporter || !has_scheme(resource, "ctxt") || !rt_address_is_valid(resource) ||
            !rt_address_is_valid(reporter) || senml_check(value, NULL) < 0)
                return -EINVAL;
        if (rd_get(m->rd, resource, NULL, &current, NULL) >= 0 && current && !streq(current, reporter))
                return -EPERM;
        /* The reporter is no runtime: actuation sent to it finds no
         * session and is answered 404. */
        return publish(m, resource, reporter, reporter, value);
}

int msg_publish_status(msg *m, const char *url, const char *status) {
        _cleanup_free_ char *resource = NULL, *reporter = NULL;
        _cleanup_(json_decrefp) json_t *value = NULL;
        const char *sep, *path;

        if (!m || !url || !status)
                return -EINVAL;
        sep = strstr(url, "://");
        path = sep ? strchr(sep + 3, '/') : NULL;
        if (!sep || sep == url || !path || !path[1])
                return -EINVAL;
        if (asprintf(&resource, "ctxt://%s/registry/%.*s%s", m->domain, (int) (sep - url), url, path) < 0 ||
            asprintf(&reporter, "domain://registry.%s", m->domain) < 0)
                return -ENOMEM;
        value = json_pack("[{s:s,s:s}]", "n", "status", "vs", status);
        if (!value)
                return -ENOMEM;
        return msg_publish(m, resource, reporter, value);
}

int msg_send(msg *m, const rt_message *message) {
        size_t n_to;

        if (!m || !message)
                return -EINVAL;
        n_to = rt_message_get_n_to(message);
        for (size_t i = 0; i < n_to; i++) {
                const char *to = rt_message_get_to(message, i);
                if (!has_scheme(to, "ctxt") && !streq(to, m->sm_address) && service_index(m, to) < 0 &&
                    !session_for_address(m, to))
                        return -ENOENT;
        }
        return route_message(m, NULL, message);
}

/* --- HTTP: authentication and sessions ------------------------------------------------ */

/* Answers 401/403 itself and returns 0 with *ret_subject NULL then. */
static int authenticate(msg *m, route_request *rr, char **ret_subject, uint64_t *ret_expiry) {
        const char *why = NULL;
        char *subject = NULL;
        uint64_t expiry = 0;
        int r;

        *ret_subject = NULL;
        if (m->auth_expiry)
                r = m->auth_expiry(route_request_get_request(rr), "runtime", &subject, &expiry, &why,
                                   m->auth_userdata);
        else if (m->auth)
                /* No expiry known: nothing is remembered. */
                r = m->auth(route_request_get_request(rr), "runtime", &subject, &why, m->auth_userdata);
        else
                r = -EACCES, why = "no identity provider configured";
        if (r == -EPERM)
                return route_respond_error(rr, 403, "%s", why ?: "forbidden");
        if (r < 0) {
                _cleanup_free_ char *body = NULL;
                H2Header h[2] = { { "content-type", "application/json" },
                                  { "www-authenticate", "Bearer realm=\"rethink-domain\", scope=\"runtime\"" } };

                r = h2_json_error_body(401, why ?: "unauthorized", &body);
                if (r < 0)
                        return r;
                route_request_mark_answered(rr);
                return h2_request_respond(route_request_get_request(rr), 401, h, ELEMENTSOF(h), body, (size_t) r);
        }
        *ret_subject = subject;
        if (ret_expiry)
                *ret_expiry = expiry;
        return 0;
}

/* The session named in the path, if the caller owns it; answers
 * otherwise and returns NULL. */
static session *session_for_request(msg *m, route_request *rr, int *ret_r) {
        const char *credential = h2_request_get_header(route_request_get_request(rr), "authorization");
        _cleanup_free_ char *subject = NULL;
        uint64_t expiry = 0;
        session *s;

        s = session_by_id(m, route_request_get_param(rr, 0));
        /* The same credential as last time, still valid: no new signature
         * check. Compared in constant time, so the cache cannot be used
         * to guess a credential. */
        if (s && s->credential && credential && id_token_equal(credential, s->credential) &&
            now(CLOCK_REALTIME) < s->credential_expiry) {
                *ret_r = 0;
                return s;
        }

        *ret_r = authenticate(m, rr, &subject, &expiry);
        if (!subject)
                return NULL;
        if (!s) {
                *ret_r = route_respond_error(rr, 404, "no such session");
                return NULL;
        }
        if (!streq(s->owner, subject)) {
                *ret_r = route_respond_error(rr, 403, "the session belongs to another subject");
                return NULL;
        }
        if (credential && expiry > 0) {
                char *c = strdup(credential);

                if (c) {
                        if (s->credential)
                                explicit_bzero_safe(s->credential, strlen(s->credential));
                        free(s->credential);
                        s->credential = c;
                        s->credential_expiry = expiry;
                }
        }
        return s;
}

static json_t *session_json(session *s) {
        char stream[128], messages[128];

        snprintf(stream, sizeof(stream), "/msg/sessions/%s/stream", s->id);
        snprintf(messages, sizeof(messages), "/msg/sessions/%s/messages", s->id);
        return json_pack("{s:s,s:s,s:s,s:s,s:I}", "session", s->id, "runtime", s->runtime, "stream", stream,
                         "messages", messages, "queued", (json_int_t) s->q_len);
}

/* Binds runtime to owner on first use, persistently: a restart must not
 * let another subject take over a runtime (and its subscriptions). */
static int claim_runtime(msg *m, const char *runtime, const char *owner, bool protostub) {
        sqlite3_stmt *st;
        int r;

        r = db_prepare(m->db,
                       "INSERT INTO runtimes (runtime, owner, created_usec, protostub) VALUES (?1, ?2, ?3, ?4) "
                       "ON CONFLICT (runtime) DO NOTHING",
                       &st);
        if (r >= 0)
                r = db_bind_text(m->db, st, 1, runtime);
        if (r >= 0)
                r = db_bind_text(m->db, st, 2, owner);
        if (r >= 0)
                r = db_bind_int64(m->db, st, 3, (int64_t) now(CLOCK_REALTIME));
        if (r >= 0)
                r = db_bind_int64(m->db, st, 4, protostub);
        if (r >= 0)
                r = db_step_done(m->db, st);
        if (r < 0)
                return r;
        if (r > 0)
                return 0;
        r = db_prepare(m->db, "SELECT owner FROM runtimes WHERE runtime = ?1", &st);
        if (r >= 0)
                r = db_bind_text(m->db, st, 1, runtime);
        if (r >= 0)
                r = db_step(m->db, st);
        if (r < 0)
                return r;
        if (r == 0)
                return -EIO;
        r = streq((const char *) sqlite3_column_text(st, 0), owner) ? 0 : -EPERM;
        db_reset(st);
        return r;
}

static int session_new(msg *m, const char *runtime, const char *owner, session **ret) {
        session *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->msg = m;
        r = id_uuid_new(s->id);
        if (r < 0) {
                free(s);
                return r;
        }
        s->runtime = strdup(runtime);
        s->owner = strdup(owner);
        if (!s->runtime || !s->owner) {
                session_free(s);
                return -ENOMEM;
        }
        if (!tsearch(s, &m->sessions_by_id, compare_session_id)) {
                session_free(s);
                return -ENOMEM;
        }
        if (!tsearch(s, &m->sessions_by_runtime, compare_session_runtime)) {
                (void) tdelete(s, &m->sessions_by_id, compare_session_id);
                session_free(s);
                return -ENOMEM;
        }
        m->n_sessions++;
        /* Counts as detached until its first stream. */
        s->detached_usec = now(CLOCK_MONOTONIC);
        idle_arm(m);
        *ret = s;
        return 0;
}

static void forget_hyperties(msg *m, session *s) {
        for (size_t i = 0; i < s->n_hyperties; i++) {
                void *node = tfind(&s->hyperties[i], &m->hyperties, compare_str);

                if (node) {
                        hyperty_entry *h = *(hyperty_entry **) node;

                        (void) tdelete(&s->hyperties[i], &m->hyperties, compare_str);
                        hyperty_entry_free(h);
                }
        }
}

static int session_close(msg *m, session *s) {
        (void) tdelete(s, &m->sessions_by_runtime, compare_session_runtime);
        (void) tdelete(s, &m->sessions_by_id, compare_session_id);
        m->n_sessions--;
        forget_hyperties(m, s);
        session_free(s);
        return 0;
}

/* --- idle sessions ------------------------------------------------------------------- */

typedef struct idle_scan {
        uint64_t now, idle, next;
        session **expired;
        size_t n_expired, n_alloc;
} idle_scan;

static void idle_visit(const void *node, VISIT v, void *userdata) {
        session *s = *(session *const *) node;
        idle_scan *scan = userdata;
        uint64_t deadline;

        if ((v != postorder && v != leaf) || s->att)
                return;
        deadline = s->detached_usec + scan->idle;
        if (deadline > scan->now) {
                scan->next = MIN(scan->next, deadline);
                return;
        }
        if (scan->n_expired == scan->n_alloc) {
                size_t a = MAX(scan->n_alloc * 2, (size_t) 16);
                session **p = reallocarray(scan->expired, a, sizeof(*p));

                if (!p)
                        return; /* next time */
                scan->expired = p;
                scan->n_alloc = a;
        }
        scan->expired[scan->n_expired++] = s;
}

/* One timer, for the session that runs out first; each firing scans all
 * sessions, closes what ran out and re-arms for the next. */
static int on_idle(sd_event_source *es, uint64_t usec, void *userdata) {
        msg *m = userdata;
        idle_scan scan = { .now = now(CLOCK_MONOTONIC), .idle = m->session_idle_usec, .next = UINT64_MAX };

        twalk_r(m->sessions_by_id, idle_visit, &scan);
        for (size_t i = 0; i < scan.n_expired; i++) {
                char buf[FORMAT_TIMESPAN_MAX];

                log_info("Session %s of %s closed: no stream for %s.", scan.expired[i]->id, scan.expired[i]->runtime,
                         format_timespan_exact(buf, sizeof(buf), m->session_idle_usec));
                session_close(m, scan.expired[i]);
        }
        free(scan.expired);
        if (scan.next != UINT64_MAX) {
                int r = event_reset_time_relative(m->event, &m->idle_timer, scan.next - scan.now, on_idle, m,
                                                  "msg-session-idle");
                if (r < 0)
                        log_warning_errno(r, "Failed to arm the idle session timer: %m");
        }
        return 0;
}

static void idle_arm(msg *m) {
        int enabled = SD_EVENT_OFF;
        int r;

        /* Every session has the same allowance, so one detached later
         * never runs out earlier than the one the timer waits for. */
        if (m->idle_timer && sd_event_source_get_enabled(m->idle_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        r = event_reset_time_relative(m->event, &m->idle_timer, m->session_idle_usec, on_idle, m, "msg-session-idle");
        if (r < 0)
                log_warning_errno(r, "Failed to arm the idle session timer: %m");
}

static int on_session_open(route_request *rr, void *userdata) {
        msg *m = userdata;
        _cleanup_free_ char *subject = NULL, *why = NULL;
        _cleanup_(json_decrefp) json_t *body = NULL, *answer = NULL;
        _cleanup_rt_address_ rt_address *a = NULL;
        const uint8_t *data;
        const char *runtime;
        json_t *protostub;
        json_error_t err;
        session *s;
        size_t size;
        int r;

        r = authenticate(m, rr, &subject, NULL);
        if (!subject)
                return r;

        data = route_request_get_body(rr, &size);
        body = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, &err);
        if (!body || !json_is_object(body))
                return route_respond_error(rr, 400, "expected a JSON object {\"runtime\": \"runtime://%s/<uuid>\"}",
                                           m->domain);
        runtime = json_string_value(json_object_get(body, "runtime"));
        protostub = json_object_get(body, "protostub");
        if (!runtime || (protostub && !json_is_boolean(protostub)) ||
            json_object_size(body) != 1 + !!protostub)
                return route_respond_error(rr, 400,
                                           "expected the fields \"runtime\" and, optionally, \"protostub\" (a boolean)");
        r = rt_address_parse(runtime, &a, &why);
        if (r < 0)
                return route_respond_error(rr, 400, "runtime: %s", why ?: "not a valid address");
        if (rt_address_get_scheme(a) != RT_ADDRESS_RUNTIME || !streq(rt_address_get_authority(a), m->domain))
                return route_respond_error(rr, 400, "runtime: expected runtime://%s/<uuid>", m->domain);

        s = session_by_runtime(m, runtime);
        if (s) {
                if (!streq(s->owner, subject))
                        return route_respond_error(rr, 403, "the runtime belongs to another subject");
                answer = session_json(s);
                if (!answer)
                        return -ENOMEM;
                log_debug("Session %s of %s re-opened by %s.", s->id, runtime, subject);
                return route_respond_json(rr, 200, answer, NULL, 0);
        }

        r = claim_runtime(m, runtime, subject, json_is_true(protostub));
        if (r == -EPERM)
                return route_respond_error(rr, 403, "the runtime belongs to another subject");
        if (r < 0)
                return log_error_errno(r, "Failed to record the owner of %s: %s", runtime, db_last_error(m->db));
        r = session_new(m, runtime, subject, &s);
        if (r < 0)
                return r;
        log_info("Session %s opened for %s by %s.", s->id, runtime, subject);
        answer = session_json(s);
        if (!answer)
                return -ENOMEM;
        {
                char location[128];
                snprintf(location, sizeof(location), "/msg/sessions/%s", s->id);
                return route_respond_json(rr, 201, answer, (const H2Header[]) { { "location", location } }, 1);
        }
}

static int on_session_delete(route_request *rr, void *userdata) {
        msg *m = userdata;
        session *s;
        int r;

        s = session_for_request(m, rr, &r);
        if (!s)
                return r;
        log_info("Session %s of %s closed by its owner.", s->id, s->runtime);
        session_close(m, s);
        return route_respond_empty(rr, 204, NULL, 0);
}

static void on_drain(H2Request *req, void *userdata) {
        stream_att *att = userdata;

        if (att->session)
                (void) session_flush(att->session);
}

static void stream_att_free(void *p) {
        stream_att *att = p;

        if (att->session && att->session->att == att) {
                log_debug("Stream of session %s closed.", att->session->id);
                session_detach(att->session);
        }
        free(att);
}

static int on_stream(route_request *rr, void *userdata) {
        msg *m = userdata;
        stream_att *att;
        session *s;
        int r;

        s = session_for_request(m, rr, &r);
        if (!s)
                return r;

        att = calloc(1, sizeof(*att));
        if (!att)
                return -ENOMEM;
        att->msg = m;
        att->rr = rr;
        route_request_set_state(rr, att, stream_att_free);

        r = h2_request_start_response(route_request_get_request(rr), 200,
                                      (const H2Header[]) { { "content-type", "application/x-ndjson" },
                                                           { "cache-control", "no-store" } },
                                      2);
        if (r < 0)
                return r;
        route_request_mark_answered(rr);
        r = h2_request_set_drain_handler(route_request_get_request(rr), MSG_STREAM_LOW_WATER, on_drain, att);
        if (r < 0)
                return r;

        if (s->att) {
                /* One stream per session: the newer one wins, the older
                 * one ends cleanly. */
                log_debug("Session %s: a new stream replaces the old one.", s->id);
                (void) h2_request_end(route_request_get_request(s->att->rr));
                session_detach(s);
        }
        s->att = att;
        att->session = s;
        log_debug("Session %s: stream attached, %zu queued, %" PRIu64 " dropped.", s->id, s->q_len, s->dropped);
        r = session_flush(s);
        if (r >= 0 && m->stream_fn)
                m->stream_fn(s->runtime, s->owner, m->stream_userdata);
        return r;
}

/* --- HTTP: messages ------------------------------------------------------------------- */

typedef struct parsed {
        rt_message **v;
        size_t n;
} parsed;

static void parsed_clear(parsed *p) {
        for (size_t i = 0; i < p->n; i++)
                rt_message_free(p->v[i]);
        free(p->v);
}

static int parsed_add(parsed *p, rt_message *message) {
        rt_message **v = reallocarray(p->v, p->n + 1, sizeof(*v));

        if (!v) {
                rt_message_free(message);
                return -ENOMEM;
        }
        p->v = v;
        p->v[p->n++] = message;
        return 0;
}

/* One message, or NDJSON: all of them parse, or none is routed. */
static int parse_body(const uint8_t *data, size_t size, parsed *p, char **ret_reason, int *ret_status) {
        _cleanup_free_ char *reason = NULL;
        rt_message *message = NULL;
        size_t line = 0;
        int r;

        r = rt_message_parse(data, size, NULL, &message, &reason);
        if (r >= 0)
                return parsed_add(p, message);
        if (!memchr(data, '\n', size) || (size > 0 && memchr(data, '\n', size) == data + size - 1)) {
                *ret_status = rt_message_status_for_error(r);
                *ret_reason = TAKE_PTR(reason);
                return r;
        }
        free(reason);
        reason = NULL;

        for (const uint8_t *q = data, *end = data + size; q < end;) {
                const uint8_t *nl = memchr(q, '\n', (size_t) (end - q));
                size_t len = nl ? (size_t) (nl - q) : (size_t) (end - q);

                line++;
                if (len > 0 && !(len == 1 && q[0] == '\r')) {
                        r = rt_message_parse(q, len, NULL, &message, &reason);
                        if (r < 0) {
                                *ret_status = rt_message_status_for_error(r);
                                if (asprintf(ret_reason, "line %zu: %s", line, strna(reason)) < 0)
                                        *ret_reason = NULL;
                                return r;
                        }
                        r = parsed_add(p, message);
                        if (r < 0)
                                return r;
                }
                q += len + 1;
        }
        if (p->n == 0) {
                *ret_status = 400;
                *ret_reason = strdup("no message in the request body");
                return -EINVAL;
        }
        return 0;
}

/* 1 when from may speak for the session's runtime, 0 when not, and
 * records a newly seen hyperty in *ret_claim. */
static int check_from(msg *m, session *s, const char *from, bool *ret_claim) {
        _cleanup_free_ char *runtime = NULL;
        int r;

        *ret_claim = false;
        if (has_scheme(from, "runtime"))
                return streq(from, s->runtime);
        if (!has_scheme(from, "hyperty"))
                return 0;
        r = hyperty_runtime(m, from, &runtime);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_claim = true;
                return 1;
        }
        return streq(runtime, s->runtime);
}

static int claim_hyperty(msg *m, session *s, const char *hyperty) {
        hyperty_entry *h;
        char **v, *name;
        void *n;

        n = tfind(&hyperty, &m->hyperties, compare_str);
        if (n)
                return 0;
        v = reallocarray(s->hyperties, s->n_hyperties + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        s->hyperties = v;
        name = strdup(hyperty);
        if (!name)
                return -ENOMEM;
        h = calloc(1, sizeof(*h));
        if (!h) {
                free(name);
                return -ENOMEM;
        }
        h->hyperty = strdup(hyperty);
        h->runtime = strdup(s->runtime);
        if (!h->hyperty || !h->runtime || !tsearch(h, &m->hyperties, compare_str)) {
                hyperty_entry_free(h);
                free(name);
                return -ENOMEM;
        }
        s->hyperties[s->n_hyperties++] = name;
        log_debug("Hyperty %s is reached through %s.", hyperty, s->runtime);
        return 0;
}

static int on_messages(route_request *rr, void *userdata) {
        msg *m = userdata;
        _cleanup_(parsed_clear) parsed p = {};
        _cleanup_free_ char *reason = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        const uint8_t *data;
        int r, status = 400;
        session *s;
        size_t size;

        s = session_for_request(m, rr, &r);
        if (!s)
                return r;

        data = route_request_get_body(rr, &size);
        r = parse_body(data, size, &p, &reason, &status);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return route_respond_error(rr, status, "%s", reason ?: "malformed message");

        /* Every sender first, so a spoofed message anywhere in the batch
         * refuses all of it. */
        for (size_t i = 0; i < p.n; i++) {
                bool claim;

                r = check_from(m, s, rt_message_get_from(p.v[i]), &claim);
                if (r < 0)
                        return r;
                if (r == 0) {
                        log_notice("Session %s of %s (%s): refused a message from %s.", s->id, s->runtime, s->owner,
                                   rt_message_get_from(p.v[i]));
                        return route_respond_error(rr, 403,
                                                   "message %zu: 'from' is neither this session's runtime nor "
                                                   "one of its hyperties",
                                                   i + 1);
                }
        }
        for (size_t i = 0; i < p.n; i++) {
                const char *from = rt_message_get_from(p.v[i]);

                if (has_scheme(from, "hyperty")) {
                        r = claim_hyperty(m, s, from);
                        if (r < 0)
                                return r;
                }
        }
        for (size_t i = 0; i < p.n; i++) {
                r = route_message(m, s, p.v[i]);
                if (r < 0)
                        return log_error_errno(r, "Failed to route message %" PRIu64 " from %s: %m",
                                               rt_message_get_id(p.v[i]), rt_message_get_from(p.v[i]));
        }

        if (rd_has_pending(m->rd)) {
                pending_ack *pa = calloc(1, sizeof(*pa));

                if (!pa)
                        return -ENOMEM;
                pa->msg = m;
                pa->rr = rr;
                pa->n_accepted = p.n;
                pa->next = m->pending;
                if (m->pending)
                        m->pending->prev = pa;
                m->pending = pa;
                route_request_set_state(rr, pa, pending_free);
                return 0;
        }
        answer = json_pack("{s:I}", "accepted", (json_int_t) p.n);
        if (!answer)
                return -ENOMEM;
        return route_respond_json(rr, 202, answer, NULL, 0);
}

/* --- admin: the Global M2M Resource Directory ------------------------------------- */

#define RESOURCES_LIMIT_DEFAULT 100
#define RESOURCES_LIMIT_MAX 1000

typedef struct resource_page {
        const char *prefix, *cursor;
        size_t limit;
        json_t *list;
        const char *last;
        bool more;
} resource_page;

static int add_resource(const char *resource, const char *reporter, const char *runtime, json_t *value,
                        size_t n_subscribers, void *userdata) {
        resource_page *p = userdata;
        json_t *o;

        if (p->cursor && strcmp(resource, p->cursor) <= 0)
                return 0;
        if (p->prefix && rt_address_string_has_prefix(resource, p->prefix) <= 0)
                return 0;
        if (json_array_size(p->list) >= p->limit) {
                p->more = true;
                return 1;
        }
        o = json_pack("{s:s, s:s?, s:s?, s:O?, s:I}", "resource", resource, "reporter", reporter, "runtime", runtime,
                      "value", value, "subscribers", (json_int_t) n_subscribers);
        if (!o || json_array_append_new(p->list, o) < 0)
                return -ENOMEM;
        p->last = resource;
        return 0;
}

/* GET /admin/resources[?prefix=ctxt://…][&limit=N][&cursor=<next>]: every
 * resource with its reporter and last value, in name order, paged by name. */
static int on_admin_resources(route_request *rr, void *userdata) {
        static const char *const allowed[] = { "prefix", "limit", "cursor", NULL };
        msg *m = userdata;
        _cleanup_free_ char *prefix = NULL, *limit = NULL, *cursor = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        resource_page p = { .limit = RESOURCES_LIMIT_DEFAULT };
        int r;

        if (route_query_check_allowed(rr, allowed) < 0)
                return route_respond_error(rr, 400, "query: unknown parameter (allowed: prefix, limit, cursor)");
        if ((r = route_query_get(rr, "prefix", &prefix)) == -ENOMEM || (r = route_query_get(rr, "limit", &limit)) == -ENOMEM ||
            (r = route_query_get(rr, "cursor", &cursor)) == -ENOMEM)
                return -ENOMEM;
        if (prefix && (!rt_address_is_valid(prefix) || strncmp(prefix, "ctxt://", 7) != 0))
                return route_respond_error(rr, 400, "query parameter 'prefix': expected a ctxt:// address");
        if (cursor && !rt_address_is_valid(cursor))
                return route_respond_error(rr, 400, "query parameter 'cursor': expected the 'next' of a previous page");
        if (limit) {
                char *end;
                unsigned long v;

                errno = 0;
                v = strtoul(limit, &end, 10);
                if (errno != 0 || end == limit || *end || limit[0] < '0' || limit[0] > '9' || v < 1 ||
                    v > RESOURCES_LIMIT_MAX)
                        return route_respond_error(rr, 400, "query parameter 'limit': expected an integer from 1 to %d",
                                                   RESOURCES_LIMIT_MAX);
                p.limit = v;
        }
        p.prefix = prefix;
        p.cursor = cursor;
        p.list = json_array();
        if (!p.list)
                return -ENOMEM;
        r = rd_foreach_resource(m->rd, add_resource, &p);
        if (r < 0) {
                json_decref(p.list);
                return r;
        }
        answer = json_pack("{s:o}", "resources", p.list);
        if (!answer)
                return -ENOMEM;
        if (p.more && json_object_set_new(answer, "next", json_string(p.last)) < 0)
                return -ENOMEM;
        return route_respond_json(rr, 200, answer, NULL, 0);
}

static const route routes[] = {
        { .method = "GET", .pattern = "/admin/resources", .flags = ROUTE_ADMIN, .handler = on_admin_resources },
        { .method = "POST", .pattern = "/msg/sessions", .max_body = 4096, .handler = on_session_open },
        { .method = "DELETE", .pattern = "/msg/sessions/*", .handler = on_session_delete },
        { .method = "GET", .pattern = "/msg/sessions/*/stream", .handler = on_stream },
        { .method = "POST", .pattern = "/msg/sessions/*/messages", .max_body = MSG_POST_MAX_BODY,
          .handler = on_messages },
};

int msg_add_routes(msg *m, router *r) {
        return router_add(r, routes, ELEMENTSOF(routes), m);
}
