/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "bootstrap.h"
#include "db.h"
#include "descriptor.h"
#include "log.h"
#include "message.h"
#include "time-util.h"

/* bootstrap.db, version 1. Order ids are the ids of the messages that
 * carry them, so a device's response finds its order; AUTOINCREMENT never
 * hands out an id twice, not even after the newest order was removed. */
static const char *const migrations[] = {
        "CREATE TABLE bootstraps ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  endpoint TEXT NOT NULL,"
        "  application TEXT,"
        "  created_usec INTEGER NOT NULL"
        ");"
        "CREATE TABLE orders ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  bootstrap INTEGER REFERENCES bootstraps (id),"
        "  endpoint TEXT NOT NULL,"
        "  component TEXT NOT NULL,"
        "  type TEXT NOT NULL,"    /* the message type: create, execute, delete */
        "  value TEXT NOT NULL,"   /* the order, body.value */
        "  status TEXT NOT NULL,"  /* queued, sent, accepted, refused */
        "  code INTEGER,"
        "  description TEXT,"
        "  created_usec INTEGER NOT NULL,"
        "  updated_usec INTEGER NOT NULL"
        ");"
        "CREATE INDEX orders_by_endpoint ON orders (endpoint, status);"
        "CREATE TABLE components ("
        "  endpoint TEXT NOT NULL,"
        "  name TEXT NOT NULL,"
        "  kind TEXT,"             /* hyperty, protocolstub; NULL: installed by others */
        "  version TEXT,"
        "  state TEXT,"            /* NULL until the device reports */
        "  prev_state TEXT,"
        "  result INTEGER,"
        "  reason TEXT,"
        "  active INTEGER NOT NULL DEFAULT 0,"
        "  removed INTEGER NOT NULL DEFAULT 0,"
        "  principal TEXT,"
        "  last_order INTEGER,"
        "  updated_usec INTEGER NOT NULL,"
        "  PRIMARY KEY (endpoint, name)"
        ") WITHOUT ROWID;",
};

typedef struct watcher {
        bootstrap *b;
        route_request *rr;
        struct watcher *prev, *next;
} watcher;

struct bootstrap {
        sd_event *event;
        db *db;
        catalogue *catalogue;
        dm *dm;
        msg *msg;
        char *domain;
        char *dm_address;
        watcher *watchers;
        size_t n_watchers;
};

/* What the device reports after LWM2M Object 9; the domain does not link
 * the software manager, so it keeps its own names for people. */
static const char *result_to_string(int result) {
        switch (result) {
        case 0: return "initial";
        case 1: return "downloading";
        case 2: return "installed";
        case 3: return "downloaded";
        case 50: return "storage full";
        case 51: return "out of memory";
        case 52: return "connection lost";
        case 53: return "integrity check failure";
        case 54: return "unsupported package type";
        case 56: return "invalid URI";
        case 57: return "update error";
        case 58: return "install failure";
        case 59: return "uninstall failure";
        default: return NULL;
        }
}

static const char *const actions[] = { "confirm", "cancel", "activate", "deactivate", "uninstall" };

static bool action_is_valid(const char *a) {
        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                if (streq(a, actions[i]))
                        return true;
        return false;
}

/* The message type that carries an order. */
static const char *order_type(const char *order) {
        return streq(order, "install") ? "create" : streq(order, "uninstall") ? "delete" : "execute";
}

/* --- events --------------------------------------------------------------------- */

static void watcher_unlink(watcher *w) {
        if (!w->b)
                return;
        if (w->prev)
                w->prev->next = w->next;
        else
                w->b->watchers = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->b->n_watchers--;
        w->b = NULL;
        w->prev = w->next = NULL;
}

static void watcher_free(void *p) {
        watcher *w = p;

        watcher_unlink(w);
        free(w);
}

/* One NDJSON line to every admin following; one that falls too far behind
 * is ended (it reconnects and reads the records), so a stalled reader
 * cannot make the domain buffer without bound. */
static void emit(bootstrap *b, json_t *event) {
        _cleanup_free_ char *line = NULL;
        char t[FORMAT_RFC3339_MAX];
        size_t n;

        if (!event)
                return;
        (void) json_object_set_new(event, "time", json_string(format_rfc3339(t, sizeof(t), now(CLOCK_REALTIME)) ?: ""));
        line = json_dumps(event, JSON_COMPACT);
        json_decref(event);
        if (!line)
                return;
        n = strlen(line);
        line[n] = '\n';
        for (watcher *w = b->watchers, *next; w; w = next) {
                H2Request *req = route_request_get_request(w->rr);

                next = w->next;
                if (h2_request_get_queued(req) + n + 1 > BOOTSTRAP_EVENTS_MAX_QUEUED ||
                    h2_request_write(req, line, n + 1) < 0) {
                        log_notice("An admin event stream fell behind or broke; ending it.");
                        watcher_unlink(w);
                        (void) h2_request_end(req);
                }
        }
}

/* --- records ---------------------------------------------------------------------- */

static json_t *column_text(sqlite3_stmt *s, int col) {
        return sqlite3_column_type(s, col) == SQLITE_NULL ? json_null()
                                                          : json_string((const char *) sqlite3_column_text(s, col));
}

static json_t *column_int(sqlite3_stmt *s, int col) {
        return sqlite3_column_type(s, col) == SQLITE_NULL ? json_null() : json_integer(sqlite3_column_int64(s, col));
}

static json_t *column_time(sqlite3_stmt *s, int col) {
        char t[FORMAT_RFC3339_MAX];

        if (sqlite3_column_type(s, col) == SQLITE_NULL)
                return json_null();
        return json_string(format_rfc3339(t, sizeof(t), (usec_t) sqlite3_column_int64(s, col)) ?: "");
}

#define ORDER_COLUMNS "id, bootstrap, component, value, status, code, description, created_usec, updated_usec"

static json_t *order_json(sqlite3_stmt *s) {
        _cleanup_(json_decrefp) json_t *value = json_loads((const char *) sqlite3_column_text(s, 3), 0, NULL);
        json_t *o;

        o = json_pack("{s:I, s:o, s:s, s:s?, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t) sqlite3_column_int64(s, 0),
                      "bootstrap", column_int(s, 1), "component", (const char *) sqlite3_column_text(s, 2), "order",
                      json_string_value(json_object_get(value, "order")), "status", column_text(s, 4), "code",
                      column_int(s, 5), "description", column_text(s, 6), "createdAt", column_time(s, 7),
                      "updatedAt", column_time(s, 8));
        return o;
}

static int order_lookup(bootstrap *b, int64_t id, json_t **ret) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(b->db, "SELECT " ORDER_COLUMNS " FROM orders WHERE id = ?1", &s);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 1, id);
        if (r >= 0)
                r = db_step(b->db, s);
        if (r <= 0)
                return r == 0 ? -ENOENT : r;
        *ret = order_json(s);
        db_reset(s);
        return *ret ? 0 : -ENOMEM;
}

static void emit_order(bootstrap *b, const char *endpoint, int64_t id) {
        json_t *o = NULL;

        if (!b->watchers || order_lookup(b, id, &o) < 0)
                return;
        if (json_object_set_new(o, "event", json_string("order")) < 0 ||
            json_object_set_new(o, "endpoint", json_string(endpoint)) < 0) {
                json_decref(o);
                return;
        }
        emit(b, o);
}

static int order_set_status(bootstrap *b, int64_t id, const char *status, int code, const char *description) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(b->db,
                       "UPDATE orders SET status = ?2, code = ?3, description = ?4, updated_usec = ?5 WHERE id = ?1",
                       &s);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 1, id);
        if (r >= 0)
                r = db_bind_text(b->db, s, 2, status);
        if (r >= 0)
                r = code > 0 ? db_bind_int64(b->db, s, 3, code) : db_bind_null(b->db, s, 3);
        if (r >= 0)
                r = db_bind_text(b->db, s, 4, description);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 5, (int64_t) now(CLOCK_REALTIME));
        if (r >= 0)
                r = db_step_done(b->db, s);
        return r < 0 ? r : 0;
}

/* --- sending ---------------------------------------------------------------------- */

/* Sends order id to the device's runtime: 1 when it went out, 0 when it
 * found no session and stays queued (the runtime's next stream takes it,
 * on_stream()), negative errno on failure (it stays queued too). */
static int order_send(bootstrap *b, int64_t id) {
        _cleanup_(json_decrefp) json_t *value = NULL, *body = NULL;
        _cleanup_free_ char *endpoint = NULL, *component = NULL, *type = NULL, *runtime = NULL;
        _cleanup_rt_message_ rt_message *m = NULL;
        sqlite3_stmt *s;
        int r;

        r = db_prepare(b->db, "SELECT endpoint, component, type, value FROM orders WHERE id = ?1", &s);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 1, id);
        if (r >= 0)
                r = db_step(b->db, s);
        if (r <= 0)
                return r == 0 ? -ENOENT : r;
        endpoint = strdup((const char *) sqlite3_column_text(s, 0));
        component = strdup((const char *) sqlite3_column_text(s, 1));
        type = strdup((const char *) sqlite3_column_text(s, 2));
        value = json_loads((const char *) sqlite3_column_text(s, 3), 0, NULL);
        db_reset(s);
        if (!endpoint || !component || !type || !value)
                return -ENOMEM;

        r = msg_get_runtime_of(b->msg, endpoint, &runtime);
        if (r < 0)
                return r;
        if (r == 0) {
                log_debug("Order %" PRIi64 " for %s waits: the device never opened a session.", id, endpoint);
                return 0;
        }
        /* The resource is the runtime (its software manager), the
         * attribute the component. */
        body = json_pack("{s:s, s:s, s:O}", "resource", runtime, "attribute", component, "value", value);
        if (!body)
                return -ENOMEM;
        r = rt_message_new(rt_message_type_from_string(type), (uint64_t) id, b->dm_address, runtime, body, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to build order %" PRIi64 " for %s: %m", id, endpoint);
        r = msg_send(b->msg, m);
        if (r == -ENOENT) {
                log_debug("Order %" PRIi64 " for %s waits: %s has no session.", id, endpoint, runtime);
                return 0;
        }
        if (r < 0)
                return log_warning_errno(r, "Failed to send order %" PRIi64 " to %s, it stays queued: %m", id, runtime);
        r = order_set_status(b, id, "sent", 0, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to record order %" PRIi64 " as sent: %s", id, db_last_error(b->db));
        log_info("Order %" PRIi64 " (%s %s) sent to %s.", id, json_string_value(json_object_get(value, "order")),
                 component, endpoint);
        emit_order(b, endpoint, id);
        return 1;
}

/* Admins hear of a queued order too. */
static void send_or_announce(bootstrap *b, const char *endpoint, int64_t id) {
        if (order_send(b, id) <= 0)
                emit_order(b, endpoint, id);
}

static void on_stream(const char *runtime, const char *owner, void *userdata) {
        bootstrap *b = userdata;
        int64_t *ids = NULL;
        size_t n = 0;
        sqlite3_stmt *s;
        int r;

        /* Collect first: sending prepares other statements. */
        r = db_prepare(b->db, "SELECT id FROM orders WHERE endpoint = ?1 AND status = 'queued' ORDER BY id", &s);
        if (r >= 0)
                r = db_bind_text(b->db, s, 1, owner);
        while (r >= 0 && (r = db_step(b->db, s)) > 0) {
                int64_t *v = reallocarray(ids, n + 1, sizeof(*ids));

                if (!v) {
                        db_reset(s);
                        r = -ENOMEM;
                        break;
                }
                ids = v;
                ids[n++] = sqlite3_column_int64(s, 0);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to read the queued orders of %s: %m", owner);
        for (size_t i = 0; i < n; i++)
                (void) order_send(b, ids[i]);
        free(ids);
}

/* --- device reports ----------------------------------------------------------------- */

static void answer(bootstrap *b, const rt_message *request, int code, const char *description) {
        _cleanup_rt_message_ rt_message *resp = NULL;
        int r;

        if (code >= 400)
                r = rt_message_new_error(request, b->dm_address, code, description, &resp);
        else
                r = rt_message_new_response(request, b->dm_address, code, description, NULL, &resp);
        if (r >= 0)
                r = msg_send(b->msg, resp);
        if (r < 0)
                log_debug_errno(r, "Could not answer message %" PRIu64 " from %s: %m", rt_message_get_id(request),
                                rt_message_get_from(request));
}

static bool token_is_valid(const char *s, size_t max) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr("._:+-_", *p)))
                        return false;
        return true;
}

typedef struct report {
        const char *endpoint, *name, *version, *state, *prev_state, *reason, *principal;
        int result;
        bool active, removed;
} report;

static int parse_report(json_t *v, report *r, const char **ret_why) {
        json_t *result = json_object_get(v, "result");
        const char *key;
        json_t *x;

        if (!json_is_object(v)) {
                *ret_why = "body.value: expected the transition as an object";
                return -EINVAL;
        }
        json_object_foreach(v, key, x)
                if (!streq(key, "name") && !streq(key, "version") && !streq(key, "state") && !streq(key, "prevState") &&
                    !streq(key, "result") && !streq(key, "reason") && !streq(key, "active") &&
                    !streq(key, "removed") && !streq(key, "principal")) {
                        *ret_why = "body.value: unknown field";
                        return -EINVAL;
                }
        r->name = json_string_value(json_object_get(v, "name"));
        r->state = json_string_value(json_object_get(v, "state"));
        r->prev_state = json_string_value(json_object_get(v, "prevState"));
        r->version = json_string_value(json_object_get(v, "version"));
        r->reason = json_string_value(json_object_get(v, "reason"));
        r->principal = json_string_value(json_object_get(v, "principal"));
        if (!descriptor_name_is_valid(r->name)) {
                *ret_why = "body.value.name: expected a component name";
                return -EINVAL;
        }
        if (!token_is_valid(r->state, 32) || (r->prev_state && !token_is_valid(r->prev_state, 32))) {
                *ret_why = "body.value.state: expected a state name";
                return -EINVAL;
        }
        if (r->version && !token_is_valid(r->version, 64)) {
                *ret_why = "body.value.version: invalid";
                return -EINVAL;
        }
        if (!json_is_integer(result) || json_integer_value(result) < 0 || json_integer_value(result) > 255) {
                *ret_why = "body.value.result: expected an integer 0-255";
                return -EINVAL;
        }
        r->result = (int) json_integer_value(result);
        if ((r->reason && strlen(r->reason) > 1024) || (r->principal && strlen(r->principal) > 256)) {
                *ret_why = "body.value: reason or principal too long";
                return -EINVAL;
        }
        x = json_object_get(v, "active");
        if (x && !json_is_boolean(x)) {
                *ret_why = "body.value.active: expected a boolean";
                return -EINVAL;
        }
        r->active = json_is_true(x);
        x = json_object_get(v, "removed");
        if (x && !json_is_boolean(x)) {
                *ret_why = "body.value.removed: expected a boolean";
                return -EINVAL;
        }
        r->removed = json_is_true(x);
        return 0;
}

static int record_report(bootstrap *b, const report *p) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(b->db,
                       "INSERT INTO components (endpoint, name, version, state, prev_state, result, reason, active, "
                       "removed, principal, updated_usec) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
                       "ON CONFLICT (endpoint, name) DO UPDATE SET version = COALESCE(?3, version), state = ?4, "
                       "prev_state = ?5, result = ?6, reason = ?7, active = ?8, removed = ?9, principal = ?10, "
                       "updated_usec = ?11",
                       &s);
        if (r >= 0)
                r = db_bind_text(b->db, s, 1, p->endpoint);
        if (r >= 0)
                r = db_bind_text(b->db, s, 2, p->name);
        if (r >= 0)
                r = db_bind_text(b->db, s, 3, p->version);
        if (r >= 0)
                r = db_bind_text(b->db, s, 4, p->state);
        if (r >= 0)
                r = db_bind_text(b->db, s, 5, p->prev_state);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 6, p->result);
        if (r >= 0)
                r = db_bind_text(b->db, s, 7, p->reason);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 8, p->active);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 9, p->removed);
        if (r >= 0)
                r = db_bind_text(b->db, s, 10, p->principal);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 11, (int64_t) now(CLOCK_REALTIME));
        if (r >= 0)
                r = db_step_done(b->db, s);
        return r < 0 ? r : 0;
}

static void on_report(bootstrap *b, const rt_message *m, const char *endpoint) {
        const char *why = NULL;
        report p = { .endpoint = endpoint };
        json_t *e;
        int r;

        r = parse_report(rt_message_get_value(m), &p, &why);
        if (r < 0) {
                log_notice("Device %s sent a malformed software report: %s", endpoint, why);
                answer(b, m, 400, why);
                return;
        }
        r = record_report(b, &p);
        if (r < 0) {
                log_error_errno(r, "Failed to record the report of %s on %s: %s", p.name, endpoint, db_last_error(b->db));
                answer(b, m, 500, "could not record the report");
                return;
        }
        if (p.result >= 50)
                log_struct(LOG_WARNING,
                           LOG_MESSAGE("Device %s: %s %s, result %d (%s): %s", endpoint, p.name, p.state, p.result,
                                       strna(result_to_string(p.result)), strna(p.reason)),
                           LOG_MESSAGE_ID(BOOTSTRAP_MESSAGE_ID_REPORT_ERROR),
                           LOG_FIELD("DEVICE_ENDPOINT", "%s", endpoint), LOG_FIELD("COMPONENT", "%s", p.name),
                           LOG_FIELD("SWM_STATE", "%s", p.state), LOG_FIELD("SWM_RESULT", "%d", p.result),
                           LOG_FIELD("SWM_REASON", "%s", strna(p.reason)));
        else
                log_info("Device %s: %s %s%s, result %d.", endpoint, p.name, p.state, p.active ? " (active)" : "",
                         p.result);
        answer(b, m, 200, "recorded");

        e = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s?, s:i, s:s?, s:s?, s:b, s:b, s:s?}", "event", "report", "endpoint",
                      endpoint, "component", p.name, "version", p.version, "state", p.state, "prevState",
                      p.prev_state, "result", p.result, "resultText", result_to_string(p.result), "reason", p.reason,
                      "active", p.active, "removed", p.removed, "principal", p.principal);
        emit(b, e);
}

/* The device's answer to one of our orders. */
static void on_response(bootstrap *b, const rt_message *m, const char *endpoint) {
        int64_t id = (int64_t) rt_message_get_id(m);
        int code = rt_message_get_code(m);
        const char *description = rt_message_get_description(m);
        _cleanup_free_ char *owner = NULL;
        sqlite3_stmt *s;
        int r;

        r = db_prepare(b->db, "SELECT endpoint FROM orders WHERE id = ?1", &s);
        if (r >= 0)
                r = db_bind_int64(b->db, s, 1, id);
        if (r >= 0)
                r = db_step(b->db, s);
        if (r > 0) {
                owner = strdup((const char *) sqlite3_column_text(s, 0));
                db_reset(s);
                if (!owner)
                        return;
        }
        if (r <= 0 || !streq(owner, endpoint)) {
                log_notice("Device %s answered order %" PRIi64 ", which is not one of its orders.", endpoint, id);
                return;
        }
        if (description && strlen(description) > 1024)
                description = "(description too long)";
        r = order_set_status(b, id, code >= 200 && code < 300 ? "accepted" : "refused", code, description);
        if (r < 0) {
                log_error_errno(r, "Failed to record the answer to order %" PRIi64 ": %s", id, db_last_error(b->db));
                return;
        }
        if (code >= 300)
                log_struct(LOG_WARNING,
                           LOG_MESSAGE("Device %s refused order %" PRIi64 " with %d: %s", endpoint, id, code,
                                       strna(description)),
                           LOG_MESSAGE_ID(BOOTSTRAP_MESSAGE_ID_ORDER_REFUSED),
                           LOG_FIELD("DEVICE_ENDPOINT", "%s", endpoint), LOG_FIELD("ORDER_ID", "%" PRIi64, id),
                           LOG_FIELD("ORDER_CODE", "%d", code), LOG_FIELD("ORDER_DESCRIPTION", "%s", strna(description)));
        emit_order(b, endpoint, id);
}

static void on_message(const rt_message *m, const char *runtime, const char *owner, void *userdata) {
        bootstrap *b = userdata;

        if (!runtime || !owner) {
                log_debug("Message %" PRIu64 " from %s to the DM server ignored: not from a device.",
                          rt_message_get_id(m), rt_message_get_from(m));
                return;
        }
        switch (rt_message_get_type(m)) {
        case RT_MESSAGE_RESPONSE:
                on_response(b, m, owner);
                return;
        case RT_MESSAGE_UPDATE:
                on_report(b, m, owner);
                return;
        default:
                answer(b, m, 400, "the device management server takes software reports (update) and answers to its orders");
                return;
        }
}

/* --- admin API ------------------------------------------------------------------------ */

/* The device must be registered and claimed: 0, or answers and returns 1. */
static int check_device(bootstrap *b, route_request *rr, const char *endpoint, int *ret_r) {
        _cleanup_(json_decrefp) json_t *dev = NULL;
        int r;

        *ret_r = 0;
        if (!dm_endpoint_is_valid(endpoint)) {
                *ret_r = route_respond_error(rr, 404, "no such device");
                return 1;
        }
        r = dm_get_device(b->dm, endpoint, &dev);
        if (r == -ENOENT) {
                *ret_r = route_respond_error(rr, 404, "no such device");
                return 1;
        }
        if (r < 0) {
                *ret_r = r;
                return 1;
        }
        if (!json_is_true(json_object_get(dev, "claimed"))) {
                *ret_r = route_respond_error(rr, 409, "device %s is not claimed", endpoint);
                return 1;
        }
        if (!streq_ptr(json_string_value(json_object_get(dev, "state")), "registered")) {
                *ret_r = route_respond_error(rr, 409, "device %s is not registered (%s)", endpoint,
                                             strna(json_string_value(json_object_get(dev, "state"))));
                return 1;
        }
        return 0;
}

typedef struct wanted {
        char *name;
        const char *kind;
        json_t *descriptor;
} wanted;

typedef struct plan {
        const char *endpoint;
        const char *application;
        wanted *v;
        size_t n;
        int64_t bootstrap;
        int64_t *ids;
} plan;

static void plan_done(plan *p) {
        for (size_t i = 0; i < p->n; i++) {
                free(p->v[i].name);
                json_decref(p->v[i].descriptor);
        }
        free(p->v);
        free(p->ids);
}

static int insert_order(db *d, const char *endpoint, int64_t bootstrap_id, const char *component, json_t *value,
                        int64_t *ret_id) {
        _cleanup_free_ char *text = json_dumps(value, JSON_COMPACT);
        int64_t t = (int64_t) now(CLOCK_REALTIME);
        sqlite3_stmt *s;
        int r;

        if (!text)
                return -ENOMEM;
        r = db_prepare(d,
                       "INSERT INTO orders (bootstrap, endpoint, component, type, value, status, created_usec, "
                       "updated_usec) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)",
                       &s);
        if (r >= 0)
                r = bootstrap_id > 0 ? db_bind_int64(d, s, 1, bootstrap_id) : db_bind_null(d, s, 1);
        if (r >= 0)
                r = db_bind_text(d, s, 2, endpoint);
        if (r >= 0)
                r = db_bind_text(d, s, 3, component);
        if (r >= 0)
                r = db_bind_text(d, s, 4, order_type(json_string_value(json_object_get(value, "order"))));
        if (r >= 0)
                r = db_bind_text(d, s, 5, text);
        if (r >= 0)
                r = db_bind_int64(d, s, 6, t);
        if (r >= 0)
                r = db_step_done(d, s);
        if (r < 0)
                return r;
        *ret_id = sqlite3_last_insert_rowid(db_get_handle(d));
        return 0;
}

static int mark_component(db *d, const char *endpoint, const char *name, const char *kind, const char *version,
                          int64_t order) {
        sqlite3_stmt *s;
        int r;

        /* A new bootstrap of a component starts its record over. */
        r = db_prepare(d,
                       "INSERT INTO components (endpoint, name, kind, version, last_order, updated_usec) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (endpoint, name) DO UPDATE SET "
                       "kind = COALESCE(?3, kind), version = COALESCE(?4, version), last_order = ?5, "
                       "updated_usec = ?6, state = CASE WHEN ?3 IS NULL THEN state END, "
                       "prev_state = CASE WHEN ?3 IS NULL THEN prev_state END, "
                       "result = CASE WHEN ?3 IS NULL THEN result END, "
                       "reason = CASE WHEN ?3 IS NULL THEN reason END, "
                       "active = CASE WHEN ?3 IS NULL THEN active ELSE 0 END, "
                       "removed = CASE WHEN ?3 IS NULL THEN removed ELSE 0 END",
                       &s);
        if (r >= 0)
                r = db_bind_text(d, s, 1, endpoint);
        if (r >= 0)
                r = db_bind_text(d, s, 2, name);
        if (r >= 0)
                r = db_bind_text(d, s, 3, kind);
        if (r >= 0)
                r = db_bind_text(d, s, 4, version);
        if (r >= 0)
                r = db_bind_int64(d, s, 5, order);
        if (r >= 0)
                r = db_bind_int64(d, s, 6, (int64_t) now(CLOCK_REALTIME));
        if (r >= 0)
                r = db_step_done(d, s);
        return r < 0 ? r : 0;
}

static int bootstrap_tx(db *d, void *userdata) {
        plan *p = userdata;
        sqlite3_stmt *s;
        int r;

        r = db_prepare(d, "INSERT INTO bootstraps (endpoint, application, created_usec) VALUES (?1, ?2, ?3)", &s);
        if (r >= 0)
                r = db_bind_text(d, s, 1, p->endpoint);
        if (r >= 0)
                r = db_bind_text(d, s, 2, p->application);
        if (r >= 0)
                r = db_bind_int64(d, s, 3, (int64_t) now(CLOCK_REALTIME));
        if (r >= 0)
                r = db_step_done(d, s);
        if (r < 0)
                return r;
        p->bootstrap = sqlite3_last_insert_rowid(db_get_handle(d));
        for (size_t i = 0; i < p->n; i++) {
                _cleanup_(json_decrefp) json_t *value =
                        json_pack("{s:s, s:O}", "order", "install", "descriptor", p->v[i].descriptor);

                if (!value)
                        return -ENOMEM;
                r = insert_order(d, p->endpoint, p->bootstrap, p->v[i].name, value, &p->ids[i]);
                if (r >= 0)
                        r = mark_component(d, p->endpoint, p->v[i].name, p->v[i].kind,
                                           json_string_value(json_object_get(p->v[i].descriptor, "version")),
                                           p->ids[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The component's last known state on endpoint, for the 409 of a second
 * bootstrap: 1 when it is on the device (or on its way), 0 otherwise. */
static int component_is_present(bootstrap *b, const char *endpoint, const char *name, char **ret_state) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(b->db,
                       "SELECT COALESCE(state, 'ordered') FROM components WHERE endpoint = ?1 AND name = ?2 AND "
                       "removed = 0 AND COALESCE(state, '') != 'INITIAL'",
                       &s);
        if (r >= 0)
                r = db_bind_text(b->db, s, 1, endpoint);
        if (r >= 0)
                r = db_bind_text(b->db, s, 2, name);
        if (r >= 0)
                r = db_step(b->db, s);
        if (r <= 0)
                return r;
        *ret_state = strdup((const char *) sqlite3_column_text(s, 0));
        db_reset(s);
        return *ret_state ? 1 : -ENOMEM;
}

static int plan_add(bootstrap *b, route_request *rr, plan *p, const char *kind, json_t *name, const char *field,
                    int *ret_r) {
        _cleanup_free_ char *state = NULL;
        json_t *desc = NULL;
        const char *n = json_string_value(name);
        int r;

        if (!n || !descriptor_name_is_valid(n)) {
                *ret_r = route_respond_error(rr, 400, "%s: expected component names", field);
                return 1;
        }
        for (size_t i = 0; i < p->n; i++)
                if (streq(p->v[i].name, n)) {
                        *ret_r = route_respond_error(rr, 400, "%s: component '%s' is named twice", field, n);
                        return 1;
                }
        if (p->n >= BOOTSTRAP_COMPONENTS_MAX) {
                *ret_r = route_respond_error(rr, 400, "more than %u components", BOOTSTRAP_COMPONENTS_MAX);
                return 1;
        }
        r = catalogue_get_descriptor(b->catalogue, kind, n, &desc);
        if (r == -ENOENT) {
                *ret_r = route_respond_error(rr, 404, "%s: no %s '%s' is published in the catalogue", field, kind, n);
                return 1;
        }
        if (r < 0) {
                *ret_r = r;
                return 1;
        }
        r = component_is_present(b, p->endpoint, n, &state);
        if (r != 0) {
                json_decref(desc);
                *ret_r = r < 0 ? r : route_respond_error(rr, 409, "%s: '%s' is already on the device (%s)", field, n, state);
                return 1;
        }
        p->v[p->n++] = (wanted) { .name = strdup(n), .kind = kind, .descriptor = desc };
        if (!p->v[p->n - 1].name) {
                *ret_r = -ENOMEM;
                return 1;
        }
        return 0;
}

static int on_bootstrap(route_request *rr, void *userdata) {
        bootstrap *b = userdata;
        const char *endpoint = route_request_get_param(rr, 0);
        _cleanup_(json_decrefp) json_t *body = NULL, *answer_json = NULL, *orders = NULL;
        _cleanup_(plan_done) plan p = { .endpoint = endpoint };
        json_t *app, *hyperties, *protostubs, *x;
        const uint8_t *data;
        const char *key;
        size_t size, i;
        int r;

        if (check_device(b, rr, endpoint, &r))
                return r;
        data = route_request_get_body(rr, &size);
        body = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(body))
                return route_respond_error(rr, 400, "expected {\"application\": name, \"hyperties\": [names], "
                                                    "\"protostubs\": [names]}");
        json_object_foreach(body, key, x)
                if (!streq(key, "application") && !streq(key, "hyperties") && !streq(key, "protostubs"))
                        return route_respond_error(rr, 400, "unknown field (allowed: application, hyperties, protostubs)");
        app = json_object_get(body, "application");
        hyperties = json_object_get(body, "hyperties");
        protostubs = json_object_get(body, "protostubs");
        if (app && !json_is_string(app))
                return route_respond_error(rr, 400, "application: expected a hyperty name");
        if ((hyperties && !json_is_array(hyperties)) || (protostubs && !json_is_array(protostubs)))
                return route_respond_error(rr, 400, "hyperties, protostubs: expected arrays of names");
        p.application = json_string_value(app);
        p.v = calloc(BOOTSTRAP_COMPONENTS_MAX, sizeof(*p.v));
        p.ids = calloc(BOOTSTRAP_COMPONENTS_MAX, sizeof(*p.ids));
        if (!p.v || !p.ids)
                return -ENOMEM;

        /* Protocol stubs first: the hyperties need them to reach anyone. */
        json_array_foreach(protostubs, i, x)
                if (plan_add(b, rr, &p, "protocolstub", x, "protostubs", &r))
                        return r;
        if (app) {
                bool listed = false;

                json_array_foreach(hyperties, i, x)
                        if (streq_ptr(json_string_value(x), p.application))
                                listed = true;
                if (!listed && plan_add(b, rr, &p, "hyperty", app, "application", &r))
                        return r;
        }
        json_array_foreach(hyperties, i, x)
                if (plan_add(b, rr, &p, "hyperty", x, "hyperties", &r))
                        return r;
        if (p.n == 0)
                return route_respond_error(rr, 400, "nothing to bootstrap: name an application, hyperties or protostubs");

        r = db_transaction(b->db, bootstrap_tx, &p);
        if (r < 0)
                return log_error_errno(r, "Failed to record the bootstrap of %s: %s", endpoint, db_last_error(b->db));
        log_info("Bootstrap %" PRIi64 " of %s: %zu component(s)%s%s.", p.bootstrap, endpoint, p.n,
                 p.application ? " for application " : "", strempty(p.application));

        for (i = 0; i < p.n; i++)
                send_or_announce(b, endpoint, p.ids[i]);

        orders = json_array();
        if (!orders)
                return -ENOMEM;
        for (i = 0; i < p.n; i++) {
                json_t *o = NULL;

                r = order_lookup(b, p.ids[i], &o);
                if (r < 0)
                        return r;
                if (json_array_append_new(orders, o) < 0)
                        return -ENOMEM;
        }
        answer_json = json_pack("{s:I, s:s, s:s?, s:O}", "bootstrap", (json_int_t) p.bootstrap, "endpoint", endpoint,
                                "application", p.application, "orders", orders);
        if (!answer_json)
                return -ENOMEM;
        return route_respond_json(rr, 202, answer_json, NULL, 0);
}

static int component_known(bootstrap *b, const char *endpoint, const char *name) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(b->db, "SELECT 1 FROM components WHERE endpoint = ?1 AND name = ?2", &s);
        if (r >= 0)
                r = db_bind_text(b->db, s, 1, endpoint);
        if (r >= 0)
                r = db_bind_text(b->db, s, 2, name);
        if (r >= 0)
                r = db_step(b->db, s);
        if (r > 0)
                db_reset(s);
        return r;
}

typedef struct action_tx_data {
        const char *endpoint, *name;
        json_t *value;
        int64_t id;
} action_tx_data;

static int action_tx(db *d, void *userdata) {
        action_tx_data *a = userdata;
        int r;

        r = insert_order(d, a->endpoint, 0, a->name, a->value, &a->id);
        if (r >= 0)
                r = mark_component(d, a->endpoint, a->name, NULL, NULL, a->id);
        return r;
}

static int on_action(route_request *rr, void *userdata) {
        bootstrap *b = userdata;
        const char *endpoint = route_request_get_param(rr, 0), *name = route_request_get_param(rr, 1),
                   *action = route_request_get_param(rr, 2);
        _cleanup_(json_decrefp) json_t *value = NULL, *o = NULL;
        action_tx_data a = { .endpoint = endpoint, .name = name };
        int r;

        if (!action_is_valid(action))
                return route_respond_error(rr, 404, "unknown action (confirm, cancel, activate, deactivate, uninstall)");
        if (check_device(b, rr, endpoint, &r))
                return r;
        if (!descriptor_name_is_valid(name))
                return route_respond_error(rr, 404, "no such component");
        r = component_known(b, endpoint, name);
        if (r < 0)
                return r;
        if (r == 0)
                return route_respond_error(rr, 404, "no component '%s' known on %s", name, endpoint);
        value = json_pack("{s:s, s:s}", "order", action, "name", name);
        if (!value)
                return -ENOMEM;
        a.value = value;
        r = db_transaction(b->db, action_tx, &a);
        if (r < 0)
                return log_error_errno(r, "Failed to record the %s order for %s on %s: %s", action, name, endpoint,
                                       db_last_error(b->db));
        log_info("Order %" PRIi64 ": %s %s on %s.", a.id, action, name, endpoint);
        send_or_announce(b, endpoint, a.id);
        r = order_lookup(b, a.id, &o);
        if (r < 0)
                return r;
        return route_respond_json(rr, 202, o, NULL, 0);
}

static int on_components(route_request *rr, void *userdata) {
        bootstrap *b = userdata;
        const char *endpoint = route_request_get_param(rr, 0);
        _cleanup_(json_decrefp) json_t *list = json_array(), *answer_json = NULL;
        _cleanup_(json_decrefp) json_t *dev = NULL;
        sqlite3_stmt *s;
        int r;

        if (!list)
                return -ENOMEM;
        if (!dm_endpoint_is_valid(endpoint) || dm_get_device(b->dm, endpoint, &dev) == -ENOENT)
                return route_respond_error(rr, 404, "no such device");
        r = db_prepare(b->db,
                       "SELECT c.name, c.kind, c.version, c.state, c.prev_state, c.result, c.reason, c.active, "
                       "c.removed, c.principal, c.updated_usec, o.id, o.value, o.status, o.code, o.description "
                       "FROM components c LEFT JOIN orders o ON o.id = c.last_order "
                       "WHERE c.endpoint = ?1 ORDER BY c.name",
                       &s);
        if (r >= 0)
                r = db_bind_text(b->db, s, 1, endpoint);
        while (r >= 0 && (r = db_step(b->db, s)) > 0) {
                _cleanup_(json_decrefp) json_t *ov = sqlite3_column_type(s, 12) == SQLITE_NULL
                                                             ? NULL
                                                             : json_loads((const char *) sqlite3_column_text(s, 12), 0, NULL);
                int result = sqlite3_column_type(s, 5) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 5);
                json_t *order = sqlite3_column_type(s, 11) == SQLITE_NULL
                                        ? json_null()
                                        : json_pack("{s:I, s:s?, s:o, s:o, s:o}", "id",
                                                    (json_int_t) sqlite3_column_int64(s, 11), "order",
                                                    json_string_value(json_object_get(ov, "order")), "status",
                                                    column_text(s, 13), "code", column_int(s, 14), "description",
                                                    column_text(s, 15));
                json_t *c = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:s?, s:o, s:b, s:b, s:o, s:o, s:o}", "name",
                                      (const char *) sqlite3_column_text(s, 0), "type", column_text(s, 1), "version",
                                      column_text(s, 2), "state", column_text(s, 3), "prevState", column_text(s, 4),
                                      "result", column_int(s, 5), "resultText",
                                      result >= 0 ? result_to_string(result) : NULL, "reason", column_text(s, 6),
                                      "active", sqlite3_column_int(s, 7) != 0, "removed", sqlite3_column_int(s, 8) != 0,
                                      "principal", column_text(s, 9), "updatedAt", column_time(s, 10), "lastOrder",
                                      order ?: json_null());

                if (!c || json_array_append_new(list, c) < 0) {
                        db_reset(s);
                        return -ENOMEM;
                }
        }
        if (r < 0)
                return r;
        answer_json = json_pack("{s:s, s:O}", "endpoint", endpoint, "components", list);
        if (!answer_json)
                return -ENOMEM;
        return route_respond_json(rr, 200, answer_json, NULL, 0);
}

static int on_orders(route_request *rr, void *userdata) {
        bootstrap *b = userdata;
        const char *endpoint = route_request_get_param(rr, 0);
        _cleanup_(json_decrefp) json_t *list = json_array(), *answer_json = NULL, *dev = NULL;
        sqlite3_stmt *s;
        int r;

        if (!list)
                return -ENOMEM;
        if (!dm_endpoint_is_valid(endpoint) || dm_get_device(b->dm, endpoint, &dev) == -ENOENT)
                return route_respond_error(rr, 404, "no such device");
        r = db_prepare(b->db, "SELECT " ORDER_COLUMNS " FROM orders WHERE endpoint = ?1 ORDER BY id DESC LIMIT 1000", &s);
        if (r >= 0)
                r = db_bind_text(b->db, s, 1, endpoint);
        while (r >= 0 && (r = db_step(b->db, s)) > 0) {
                json_t *o = order_json(s);

                if (!o || json_array_append_new(list, o) < 0) {
                        db_reset(s);
                        return -ENOMEM;
                }
        }
        if (r < 0)
                return r;
        answer_json = json_pack("{s:s, s:O}", "endpoint", endpoint, "orders", list);
        if (!answer_json)
                return -ENOMEM;
        return route_respond_json(rr, 200, answer_json, NULL, 0);
}

static int on_events(route_request *rr, void *userdata) {
        bootstrap *b = userdata;
        watcher *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->rr = rr;
        route_request_set_state(rr, w, watcher_free);
        r = h2_request_start_response(route_request_get_request(rr), 200,
                                      (const H2Header[]) { { "content-type", "application/x-ndjson" },
                                                           { "cache-control", "no-store" } },
                                      2);
        if (r < 0)
                return r;
        route_request_mark_answered(rr);
        w->b = b;
        w->next = b->watchers;
        if (b->watchers)
                b->watchers->prev = w;
        b->watchers = w;
        b->n_watchers++;
        log_debug("An admin follows the bootstrap events (%zu now).", b->n_watchers);
        return 0;
}

static const route routes[] = {
        { .method = "POST", .pattern = "/admin/devices/*/bootstrap", .flags = ROUTE_ADMIN, .max_body = 16384,
          .handler = on_bootstrap },
        { .method = "GET", .pattern = "/admin/devices/*/components", .flags = ROUTE_ADMIN, .handler = on_components },
        { .method = "GET", .pattern = "/admin/devices/*/orders", .flags = ROUTE_ADMIN, .handler = on_orders },
        { .method = "POST", .pattern = "/admin/devices/*/components/*/*", .flags = ROUTE_ADMIN, .max_body = 4096,
          .handler = on_action },
        { .method = "GET", .pattern = "/admin/events", .flags = ROUTE_ADMIN, .handler = on_events },
};

int bootstrap_add_routes(bootstrap *b, router *r) {
        return router_add(r, routes, ELEMENTSOF(routes), b);
}

/* --- setup ------------------------------------------------------------------------------ */

int bootstrap_new(sd_event *e, const char *domain_name, const char *state_dir, catalogue *c, dm *d, msg *m,
                  bootstrap **ret) {
        _cleanup_free_ char *path = NULL, *reason = NULL;
        _cleanup_bootstrap_ bootstrap *b = NULL;
        int r;

        if (!e || !domain_name || !state_dir || !c || !d || !m || !ret)
                return -EINVAL;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->event = sd_event_ref(e);
        b->catalogue = c;
        b->dm = d;
        b->msg = m;
        b->domain = strdup(domain_name);
        if (!b->domain || asprintf(&b->dm_address, "domain://catalogue.%s/dm", domain_name) < 0) {
                b->dm_address = NULL;
                return -ENOMEM;
        }
        if (!rt_address_is_valid(b->dm_address))
                return log_error_errno(EINVAL, "Domain name '%s' does not make a valid address.", domain_name);
        if (asprintf(&path, "%s/" BOOTSTRAP_DB_FILE_NAME, state_dir) < 0)
                return -ENOMEM;
        r = db_open(path, DB_OPEN_MKDIR, &b->db, &reason);
        if (r < 0)
                return log_error_errno(r, "Failed to open %s: %s", path, reason ?: strerror(-r));
        r = db_migrate(b->db, migrations, ELEMENTSOF(migrations));
        if (r < 0)
                return log_error_errno(r, "Failed to migrate %s: %s", path, db_last_error(b->db));
        r = msg_add_service(m, b->dm_address, on_message, b);
        if (r < 0)
                return log_error_errno(r, "Failed to register %s with the messaging service: %m", b->dm_address);
        msg_set_stream_handler(m, on_stream, b);
        *ret = TAKE_PTR(b);
        return 0;
}

bootstrap *bootstrap_free(bootstrap *b) {
        if (!b)
                return NULL;
        while (b->watchers) {
                watcher *w = b->watchers;

                watcher_unlink(w);
                (void) h2_request_end(route_request_get_request(w->rr));
        }
        db_close(b->db);
        free(b->dm_address);
        free(b->domain);
        sd_event_unref(b->event);
        free(b);
        return NULL;
}

const char *bootstrap_get_dm_address(const bootstrap *b) {
        return b->dm_address;
}

size_t bootstrap_get_n_watchers(const bootstrap *b) {
        return b->n_watchers;
}
