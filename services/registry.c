/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "db.h"
#include "id.h"
#include "log.h"
#include "registry.h"
#include "time-util.h"

struct registry {
        sd_event *event;
        db *db;
        char *domain;
        idm *idm;
        registry_lifetimes lifetimes;
        registry_status_handler_t status_handler;
        void *status_userdata;
        sd_event_source *timer;
        usec_t armed; /* CLOCK_REALTIME deadline the timer is armed for */
};

/* scripts[i] takes the schema from version i to i+1; never edit one that
 * has shipped. *_usec are CLOCK_REALTIME (they must survive restarts).
 *
 * entries.deadline_usec is the time of the entry's next transition
 * (expires_usec while live, expires_usec + grace while disconnected), so
 * that one index finds the next timer and the entries due.
 *
 * entry_values indexes resources (list 0), dataSchemes (1) and tags (2):
 * its primary key (list, kind, value, url) answers "entries with this
 * value, in url order, after the cursor" from the index alone. The url is
 * copied there for that reason; the entry's JSON keeps the values in the
 * order given for output. */
static const char *const migrations[] = {
        "CREATE TABLE runtimes ("
        "  url TEXT PRIMARY KEY,"
        "  owner TEXT NOT NULL"
        ") WITHOUT ROWID;"
        "CREATE TABLE entries ("
        "  id INTEGER PRIMARY KEY,"
        "  kind TEXT NOT NULL CHECK (kind IN ('hyperty', 'dataobject')),"
        "  url TEXT NOT NULL UNIQUE,"
        "  user TEXT,"
        "  runtime TEXT NOT NULL REFERENCES runtimes(url),"
        "  owner TEXT NOT NULL,"
        "  json TEXT NOT NULL,"
        "  status TEXT NOT NULL CHECK (status IN ('live', 'disconnected')),"
        "  lifetime_sec INTEGER NOT NULL CHECK (lifetime_sec > 0),"
        "  registered_usec INTEGER NOT NULL,"
        "  updated_usec INTEGER NOT NULL,"
        "  expires_usec INTEGER NOT NULL,"
        "  deadline_usec INTEGER NOT NULL"
        ");"
        "CREATE INDEX entries_kind ON entries (kind, url);"
        "CREATE INDEX entries_user ON entries (kind, user, url);"
        "CREATE INDEX entries_status ON entries (kind, status, url);"
        "CREATE INDEX entries_runtime ON entries (runtime);"
        "CREATE INDEX entries_deadline ON entries (deadline_usec);"
        "CREATE TABLE entry_values ("
        "  list INTEGER NOT NULL CHECK (list BETWEEN 0 AND 2),"
        "  kind TEXT NOT NULL,"
        "  value TEXT NOT NULL,"
        "  url TEXT NOT NULL,"
        "  entry INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,"
        "  PRIMARY KEY (list, kind, value, url)"
        ") WITHOUT ROWID;"
        "CREATE INDEX entry_values_entry ON entry_values (entry);",
};

/* Status changes collected inside a transaction, handed out after the
 * commit (a rolled back change must not be published). */
typedef struct event_list {
        char **urls;
        const char **statuses;
        size_t n, alloc;
} event_list;

static void event_list_clear(event_list *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->urls[i]);
        free(l->urls);
        free(l->statuses);
        *l = (event_list) {};
}

static int event_list_add(event_list *l, const char *url, const char *status) {
        if (l->n == l->alloc) {
                size_t a = MAX(l->alloc * 2, (size_t) 8);
                char **u = reallocarray(l->urls, a, sizeof(char *));
                const char **s;

                if (!u)
                        return -ENOMEM;
                l->urls = u;
                s = reallocarray(l->statuses, a, sizeof(char *));
                if (!s)
                        return -ENOMEM;
                l->statuses = s;
                l->alloc = a;
        }
        l->urls[l->n] = strdup(url);
        if (!l->urls[l->n])
                return -ENOMEM;
        l->statuses[l->n++] = status;
        return 0;
}

static void emit(registry *r, event_list *l) {
        for (size_t i = 0; i < l->n; i++) {
                log_debug("Registry: %s is %s.", l->urls[i], l->statuses[i]);
                if (r->status_handler)
                        r->status_handler(l->urls[i], l->statuses[i], r->status_userdata);
        }
        event_list_clear(l);
}

int registry_new(sd_event *e, const char *state_dir, const char *domain, idm *i, registry **ret) {
        _cleanup_registry_ registry *r = NULL;
        _cleanup_free_ char *path = NULL, *reason = NULL;
        int k;

        if (!e || !state_dir || !domain || !i || !ret)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(e);
        r->idm = i;
        r->lifetimes = REGISTRY_LIFETIMES_DEFAULT;
        r->armed = USEC_INFINITY;
        r->domain = strdup(domain);
        if (!r->domain)
                return -ENOMEM;
        if (asprintf(&path, "%s/%s", state_dir, REGISTRY_FILE_NAME) < 0)
                return -ENOMEM;
        k = db_open(path, DB_OPEN_MKDIR, &r->db, &reason);
        if (k < 0)
                return log_error_errno(k, "Failed to open %s: %s", path, reason ?: strerror(-k));
        k = db_migrate(r->db, migrations, ELEMENTSOF(migrations));
        if (k == -EPROTO)
                return log_error_errno(k, "%s was written by a newer rethink-domain (schema above %zu).", path,
                                       ELEMENTSOF(migrations));
        if (k < 0)
                return log_error_errno(k, "%s: migration failed: %s", path, db_last_error(r->db));
        *ret = TAKE_PTR(r);
        return 0;
}

registry *registry_free(registry *r) {
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->timer);
        db_close(r->db);
        sd_event_unref(r->event);
        free(r->domain);
        free(r);
        return NULL;
}

void registry_set_lifetimes(registry *r, const registry_lifetimes *l) {
        r->lifetimes = *l;
}

void registry_set_status_handler(registry *r, registry_status_handler_t handler, void *userdata) {
        r->status_handler = handler;
        r->status_userdata = userdata;
}

static const char *kind_sql(registry_kind kind) {
        return registry_kind_to_string(kind);
}

int registry_count(registry *r, registry_kind kind, uint64_t *ret) {
        sqlite3_stmt *s;
        int k;

        k = db_prepare(r->db, "SELECT COUNT(*) FROM entries WHERE kind = ?1", &s);
        if (k < 0)
                return k;
        k = db_bind_text(r->db, s, 1, kind_sql(kind));
        if (k < 0)
                return k;
        k = db_step(r->db, s);
        if (k <= 0)
                return k < 0 ? k : -EIO;
        *ret = (uint64_t) sqlite3_column_int64(s, 0);
        db_reset(s);
        return 0;
}

int registry_get_runtime(registry *r, const char *url, char **ret_runtime) {
        sqlite3_stmt *s;
        char *runtime;
        int k;

        if (!r || !url || !ret_runtime)
                return -EINVAL;
        k = db_prepare(r->db, "SELECT runtime FROM entries WHERE url = ?1", &s);
        if (k < 0)
                return k;
        k = db_bind_text(r->db, s, 1, url);
        if (k < 0)
                return k;
        k = db_step(r->db, s);
        if (k <= 0)
                return k;
        runtime = strdup((const char *) sqlite3_column_text(s, 0));
        db_reset(s);
        if (!runtime)
                return -ENOMEM;
        *ret_runtime = runtime;
        return 1;
}

/* --- expiry ---------------------------------------------------------------------- */

static int schedule(registry *r);

typedef struct expire_ctx {
        registry *registry;
        usec_t now;
        event_list events;
} expire_ctx;

static int expire_tx(db *d, void *userdata) {
        expire_ctx *c = userdata;
        sqlite3_stmt *s;
        int k;

        /* live -> disconnected first, so that an entry whose grace ran out
         * as well (we were down) goes through both, in order. */
        k = db_prepare(d,
                       "UPDATE entries SET status = 'disconnected', deadline_usec = expires_usec + ?2 "
                       "WHERE status = 'live' AND deadline_usec <= ?1 RETURNING url",
                       &s);
        if (k < 0)
                return k;
        k = db_bind_int64(d, s, 1, (int64_t) c->now);
        if (k >= 0)
                k = db_bind_int64(d, s, 2, (int64_t) c->registry->lifetimes.grace_sec * (int64_t) USEC_PER_SEC);
        if (k < 0)
                return k;
        while ((k = db_step(d, s)) > 0) {
                k = event_list_add(&c->events, (const char *) sqlite3_column_text(s, 0), REGISTRY_STATUS_DISCONNECTED);
                if (k < 0) {
                        db_reset(s);
                        return k;
                }
        }
        if (k < 0)
                return k;

        k = db_prepare(d, "DELETE FROM entries WHERE status = 'disconnected' AND deadline_usec <= ?1 RETURNING url", &s);
        if (k < 0)
                return k;
        k = db_bind_int64(d, s, 1, (int64_t) c->now);
        if (k < 0)
                return k;
        while ((k = db_step(d, s)) > 0) {
                k = event_list_add(&c->events, (const char *) sqlite3_column_text(s, 0), REGISTRY_STATUS_DELETED);
                if (k < 0) {
                        db_reset(s);
                        return k;
                }
        }
        return k;
}

static int expire(registry *r) {
        expire_ctx c = { .registry = r, .now = now(CLOCK_REALTIME) };
        int k;

        k = db_transaction(r->db, expire_tx, &c);
        if (k < 0) {
                event_list_clear(&c.events);
                return log_error_errno(k, "Registry: failed to expire entries: %s", db_last_error(r->db));
        }
        if (c.events.n > 0)
                log_debug("Registry: %zu status change(s) from expiry.", c.events.n);
        emit(r, &c.events);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        registry *r = userdata;

        r->armed = USEC_INFINITY;
        (void) expire(r);
        (void) schedule(r);
        return 0;
}

/* Arms the one timer for the earliest deadline. Deadlines are wall-clock
 * (they must mean the same after a restart); the timer is monotonic and
 * on_timer() reads the wall clock again, so a clock step only makes it
 * fire early or late once. */
static int schedule(registry *r) {
        sqlite3_stmt *s;
        usec_t next = USEC_INFINITY, t;
        int k;

        k = db_prepare(r->db, "SELECT MIN(deadline_usec) FROM entries", &s);
        if (k < 0)
                return k;
        k = db_step(r->db, s);
        if (k < 0)
                return k;
        if (k > 0) {
                if (sqlite3_column_type(s, 0) != SQLITE_NULL)
                        next = (usec_t) sqlite3_column_int64(s, 0);
                db_reset(s);
        }
        r->armed = next;
        if (next != USEC_INFINITY) {
                t = now(CLOCK_REALTIME);
                next = next > t ? next - t : 0;
        }
        k = event_reset_time_relative(r->event, &r->timer, next, on_timer, r, "registry-expiry");
        if (k < 0)
                return log_error_errno(k, "Registry: failed to arm the expiry timer: %m");
        return 0;
}

/* A new deadline: re-arm only when it comes before the armed one. A
 * deadline that moved later just lets the timer fire early once. */
static void schedule_deadline(registry *r, usec_t deadline) {
        if (deadline < r->armed)
                (void) schedule(r);
}

int registry_start(registry *r) {
        int k;

        k = expire(r);
        if (k < 0)
                return k;
        return schedule(r);
}

/* --- authorization ------------------------------------------------------------------ */

static int respond_auth_error(route_request *rr, int k, const char *reason) {
        json_t *o;
        int status = k == -EPERM ? 403 : 401;
        int q;

        o = json_pack("{s:i, s:s}", "code", status, "description", reason ?: "unauthorized");
        if (!o)
                return -ENOMEM;
        if (status == 401)
                q = route_respond_json(rr, status, o,
                                       (const H2Header[]) { { "www-authenticate",
                                                              "Bearer realm=\"rethink-domain\", error=\"invalid_token\"" } },
                                       1);
        else
                q = route_respond_json(rr, status, o, NULL, 0);
        json_decref(o);
        return q;
}

/* 1 with the claims when the request carries a token with scope "runtime"
 * (or "admin" if admin_ok); 0 when refused (answer sent). */
static int authorize(registry *r, route_request *rr, bool admin_ok, token_claims **ret) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        H2Request *req = route_request_get_request(rr);
        const char *reason = NULL;
        int k;

        /* One check (cached after a token's first use, see idm.h), then
         * either scope. */
        k = idm_check_bearer(r->idm, req, NULL, &claims, &reason);
        if (k == 0 && !token_claims_has_scope(claims, IDM_SCOPE_RUNTIME) &&
            !(admin_ok && token_claims_has_scope(claims, IDM_SCOPE_ADMIN))) {
                k = -EPERM;
                reason = admin_ok ? "token lacks scope 'runtime' or 'admin'" : "token lacks scope 'runtime'";
        }
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return respond_auth_error(rr, k, reason);
        *ret = TAKE_PTR(claims);
        return 1;
}

static bool is_admin(const token_claims *c) {
        return token_claims_has_scope(c, IDM_SCOPE_ADMIN);
}

/* --- JSON views ---------------------------------------------------------------------- */

/* Answers are built as text: the stored JSON of an entry is canonical and
 * compact (registry_record_to_json()), so the dynamic members are appended
 * to it instead of parsing and dumping every entry of a page again. */

/* Columns: json, status, lifetime_sec, registered_usec, updated_usec,
 * expires_usec, starting at col. */
static int entry_write(FILE *f, sqlite3_stmt *s, int col) {
        const char *json = (const char *) sqlite3_column_text(s, col);
        int n = sqlite3_column_bytes(s, col);
        char reg[FORMAT_RFC3339_MAX], upd[FORMAT_RFC3339_MAX], exp[FORMAT_RFC3339_MAX];

        if (!json || n < 2 || json[n - 1] != '}')
                return -EBADMSG;
        fwrite(json, 1, (size_t) n - 1, f);
        fprintf(f, ",\"status\":\"%s\",\"lifetime\":%lld,\"registered\":\"%s\",\"updated\":\"%s\",\"expires\":\"%s\"}",
                (const char *) sqlite3_column_text(s, col + 1), (long long) sqlite3_column_int64(s, col + 2),
                format_rfc3339(reg, sizeof(reg), (usec_t) sqlite3_column_int64(s, col + 3)) ?: "",
                format_rfc3339(upd, sizeof(upd), (usec_t) sqlite3_column_int64(s, col + 4)) ?: "",
                format_rfc3339(exp, sizeof(exp), (usec_t) sqlite3_column_int64(s, col + 5)) ?: "");
        return 0;
}

static int respond_text(route_request *rr, int status, const H2Header *extra, size_t n_extra, const char *text,
                        size_t size) {
        H2Header h[2] = { { "content-type", "application/json" } };

        if (n_extra > 1)
                return -EINVAL;
        if (n_extra == 1)
                h[1] = extra[0];
        route_request_mark_answered(rr);
        return h2_request_respond(route_request_get_request(rr), status, h, 1 + n_extra, text, size);
}

#define ENTRY_COLUMNS "e.json, e.status, e.lifetime_sec, e.registered_usec, e.updated_usec, e.expires_usec"

/* The entry as JSON text in *ret (to be freed); -ENOENT if there is none. */
static int load_entry(registry *r, const char *url, char **ret, size_t *ret_size) {
        _cleanup_free_ char *text = NULL;
        sqlite3_stmt *s;
        size_t size = 0;
        FILE *f;
        int k;

        k = db_prepare(r->db, "SELECT " ENTRY_COLUMNS " FROM entries e WHERE e.url = ?1", &s);
        if (k < 0)
                return k;
        k = db_bind_text(r->db, s, 1, url);
        if (k < 0)
                return k;
        k = db_step(r->db, s);
        if (k <= 0)
                return k < 0 ? k : -ENOENT;
        f = open_memstream(&text, &size);
        if (!f) {
                db_reset(s);
                return -ENOMEM;
        }
        k = entry_write(f, s, 0);
        db_reset(s);
        if (fclose(f) != 0 && k >= 0)
                k = -ENOMEM;
        if (k < 0)
                return k;
        *ret = TAKE_PTR(text);
        *ret_size = size;
        return 0;
}

/* --- register ------------------------------------------------------------------------- */

typedef struct put_ctx {
        registry *registry;
        const registry_record *record;
        const char *owner;
        const char *json;
        unsigned lifetime;
        usec_t now;
        /* out */
        bool created;
        const char *refusal; /* 403 */
        event_list events;
} put_ctx;

static int insert_values(db *d, int64_t id, const registry_record *rec) {
        sqlite3_stmt *s;
        int k;

        for (registry_list l = 0; l < _REGISTRY_LIST_MAX; l++)
                for (char *const *v = registry_record_get_list(rec, l); *v; v++) {
                        k = db_prepare(d, "INSERT INTO entry_values (list, kind, value, url, entry) VALUES (?1, ?2, ?3, ?4, ?5)",
                                       &s);
                        if (k < 0)
                                return k;
                        k = db_bind_int64(d, s, 1, (int64_t) l);
                        if (k >= 0)
                                k = db_bind_text(d, s, 2, kind_sql(registry_record_get_kind(rec)));
                        if (k >= 0)
                                k = db_bind_text(d, s, 3, *v);
                        if (k >= 0)
                                k = db_bind_text(d, s, 4, registry_record_get_url(rec));
                        if (k >= 0)
                                k = db_bind_int64(d, s, 5, id);
                        if (k >= 0)
                                k = db_step_done(d, s);
                        if (k < 0)
                                return k;
                }
        return 0;
}

static int put_tx(db *d, void *userdata) {
        put_ctx *c = userdata;
        const registry_record *rec = c->record;
        usec_t expires = c->now + (usec_t) c->lifetime * USEC_PER_SEC;
        sqlite3_stmt *s;
        int64_t id = -1;
        bool was_live = false;
        int k;

        /* The runtime belongs to the first device that registered with it. */
        k = db_prepare(d, "INSERT INTO runtimes (url, owner) VALUES (?1, ?2) ON CONFLICT (url) DO NOTHING", &s);
        if (k >= 0)
                k = db_bind_text(d, s, 1, registry_record_get_runtime(rec));
        if (k >= 0)
                k = db_bind_text(d, s, 2, c->owner);
        if (k >= 0)
                k = db_step_done(d, s);
        if (k < 0)
                return k;
        k = db_prepare(d, "SELECT owner FROM runtimes WHERE url = ?1", &s);
        if (k >= 0)
                k = db_bind_text(d, s, 1, registry_record_get_runtime(rec));
        if (k >= 0)
                k = db_step(d, s);
        if (k < 0)
                return k;
        if (k == 0)
                return -EIO;
        k = streq((const char *) sqlite3_column_text(s, 0), c->owner);
        db_reset(s);
        if (!k) {
                c->refusal = "field 'runtime': the runtime belongs to another device";
                return -EPERM;
        }

        k = db_prepare(d, "SELECT id, owner, status FROM entries WHERE url = ?1", &s);
        if (k >= 0)
                k = db_bind_text(d, s, 1, registry_record_get_url(rec));
        if (k >= 0)
                k = db_step(d, s);
        if (k < 0)
                return k;
        if (k > 0) {
                id = sqlite3_column_int64(s, 0);
                k = streq((const char *) sqlite3_column_text(s, 1), c->owner);
                was_live = streq((const char *) sqlite3_column_text(s, 2), "live");
                db_reset(s);
                if (!k) {
                        c->refusal = "the entry was registered by another device";
                        return -EPERM;
                }
        }

        if (id < 0) {
                k = db_prepare(d,
                               "INSERT INTO entries (kind, url, user, runtime, owner, json, status, lifetime_sec, "
                               "registered_usec, updated_usec, expires_usec, deadline_usec) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'live', ?7, ?8, ?8, ?9, ?9) RETURNING id",
                               &s);
                if (k >= 0)
                        k = db_bind_text(d, s, 1, kind_sql(registry_record_get_kind(rec)));
                if (k >= 0)
                        k = db_bind_text(d, s, 2, registry_record_get_url(rec));
        } else {
                k = db_prepare(d,
                               "UPDATE entries SET user = ?3, runtime = ?4, json = ?6, status = 'live', "
                               "lifetime_sec = ?7, updated_usec = ?8, expires_usec = ?9, deadline_usec = ?9 "
                               "WHERE id = ?10 RETURNING id",
                               &s);
                if (k >= 0)
                        k = db_bind_int64(d, s, 10, id);
        }
        if (k >= 0)
                k = db_bind_text(d, s, 3, registry_record_get_user(rec));
        if (k >= 0)
                k = db_bind_text(d, s, 4, registry_record_get_runtime(rec));
        if (k >= 0)
                k = db_bind_text(d, s, 5, c->owner);
        if (k >= 0)
                k = db_bind_text(d, s, 6, c->json);
        if (k >= 0)
                k = db_bind_int64(d, s, 7, c->lifetime);
        if (k >= 0)
                k = db_bind_int64(d, s, 8, (int64_t) c->now);
        if (k >= 0)
                k = db_bind_int64(d, s, 9, (int64_t) expires);
        if (k >= 0)
                k = db_step(d, s);
        if (k < 0)
                return k;
        if (k == 0)
                return -EIO;
        c->created = id < 0;
        id = sqlite3_column_int64(s, 0);
        db_reset(s);

        if (!c->created) {
                k = db_prepare(d, "DELETE FROM entry_values WHERE entry = ?1", &s);
                if (k >= 0)
                        k = db_bind_int64(d, s, 1, id);
                if (k >= 0)
                        k = db_step_done(d, s);
                if (k < 0)
                        return k;
        }
        k = insert_values(d, id, rec);
        if (k < 0)
                return k;
        if (!was_live)
                return event_list_add(&c->events, registry_record_get_url(rec), REGISTRY_STATUS_LIVE);
        return 0;
}

static int on_put(registry *r, route_request *rr, registry_kind kind) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        _cleanup_registry_record_ registry_record *rec = NULL;
        _cleanup_free_ char *json = NULL, *location = NULL;
        const char *reason = NULL, *uuid = route_request_get_param(rr, 0);
        const uint8_t *body;
        _cleanup_free_ char *out = NULL;
        size_t size, out_size = 0;
        put_ctx c;
        int k;

        k = authorize(r, rr, false, &claims);
        if (k <= 0)
                return k;
        if (route_query_check_allowed(rr, (const char *const[]) { NULL }) < 0)
                return route_respond_error(rr, 400, "no query parameters allowed");
        body = route_request_get_body(rr, &size);
        k = registry_record_parse(kind, r->domain, uuid, (const char *) body, size, &rec, &reason);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return route_respond_error(rr, 400, "%s", reason ?: "invalid body");

        c = (put_ctx) {
                .registry = r,
                .record = rec,
                .owner = token_claims_get_subject(claims),
                .lifetime = registry_record_get_lifetime(rec) ?: r->lifetimes.default_sec,
                .now = now(CLOCK_REALTIME),
        };
        if (c.lifetime < r->lifetimes.min_sec || c.lifetime > r->lifetimes.max_sec)
                return route_respond_error(rr, 400, "field 'lifetime': expected an integer between %u and %u",
                                           r->lifetimes.min_sec, r->lifetimes.max_sec);
        k = registry_record_to_json(rec, &json);
        if (k < 0)
                return k;
        c.json = json;

        k = db_transaction(r->db, put_tx, &c);
        if (k == -EPERM) {
                log_info("Registry: %s refused for %s: %s", registry_record_get_url(rec), c.owner, c.refusal);
                event_list_clear(&c.events);
                return route_respond_error(rr, 403, "%s", c.refusal);
        }
        if (k < 0) {
                event_list_clear(&c.events);
                return log_error_errno(k, "Registry: failed to store %s: %s", registry_record_get_url(rec),
                                       db_last_error(r->db));
        }
        log_debug("Registry: %s %s by %s.", registry_record_get_url(rec), c.created ? "registered" : "updated",
                  c.owner);
        emit(r, &c.events);
        schedule_deadline(r, c.now + (usec_t) c.lifetime * USEC_PER_SEC);

        k = load_entry(r, registry_record_get_url(rec), &out, &out_size);
        if (k < 0)
                return k;
        if (asprintf(&location, "/registry/%s/%s", kind == REGISTRY_HYPERTY ? "hyperties" : "dataobjects", uuid) < 0)
                return -ENOMEM;
        return respond_text(rr, c.created ? 201 : 200, (const H2Header[]) { { "location", location } }, 1, out,
                            out_size);
}

/* --- keep-alive and unregister ---------------------------------------------------------- */

typedef struct change_ctx {
        registry *registry;
        const char *url;
        const char *subject; /* NULL: admin, any owner */
        bool remove;
        usec_t now;
        /* out */
        bool found, forbidden;
        usec_t deadline;
        event_list events;
} change_ctx;

static int change_tx(db *d, void *userdata) {
        change_ctx *c = userdata;
        sqlite3_stmt *s;
        int64_t id, lifetime;
        bool live;
        int k;

        k = db_prepare(d, "SELECT id, owner, status, lifetime_sec FROM entries WHERE url = ?1", &s);
        if (k >= 0)
                k = db_bind_text(d, s, 1, c->url);
        if (k >= 0)
                k = db_step(d, s);
        if (k <= 0)
                return k;
        c->found = true;
        id = sqlite3_column_int64(s, 0);
        c->forbidden = c->subject && !streq((const char *) sqlite3_column_text(s, 1), c->subject);
        live = streq((const char *) sqlite3_column_text(s, 2), "live");
        lifetime = sqlite3_column_int64(s, 3);
        db_reset(s);
        if (c->forbidden)
                return 0;

        if (c->remove) {
                k = db_prepare(d, "DELETE FROM entries WHERE id = ?1", &s);
                if (k >= 0)
                        k = db_bind_int64(d, s, 1, id);
                if (k >= 0)
                        k = db_step_done(d, s);
                if (k < 0)
                        return k;
                return event_list_add(&c->events, c->url, REGISTRY_STATUS_DELETED);
        }

        c->deadline = c->now + (usec_t) lifetime * USEC_PER_SEC;
        k = db_prepare(d,
                       "UPDATE entries SET status = 'live', updated_usec = ?2, expires_usec = ?3, deadline_usec = ?3 "
                       "WHERE id = ?1",
                       &s);
        if (k >= 0)
                k = db_bind_int64(d, s, 1, id);
        if (k >= 0)
                k = db_bind_int64(d, s, 2, (int64_t) c->now);
        if (k >= 0)
                k = db_bind_int64(d, s, 3, (int64_t) c->deadline);
        if (k >= 0)
                k = db_step_done(d, s);
        if (k < 0)
                return k;
        return live ? 0 : event_list_add(&c->events, c->url, REGISTRY_STATUS_LIVE);
}

static int on_change(registry *r, route_request *rr, registry_kind kind, bool remove) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        _cleanup_free_ char *url = NULL;
        change_ctx c;
        size_t size;
        int k;

        k = authorize(r, rr, remove, &claims);
        if (k <= 0)
                return k;
        if (route_query_check_allowed(rr, (const char *const[]) { NULL }) < 0)
                return route_respond_error(rr, 400, "no query parameters allowed");
        (void) route_request_get_body(rr, &size);
        if (size > 0)
                return route_respond_error(rr, 400, "body: expected none");
        k = registry_url_make(kind, r->domain, route_request_get_param(rr, 0), &url);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return route_respond_error(rr, 400, "path: expected a lowercase UUID");

        c = (change_ctx) {
                .registry = r,
                .url = url,
                .subject = is_admin(claims) ? NULL : token_claims_get_subject(claims),
                .remove = remove,
                .now = now(CLOCK_REALTIME),
        };
        k = db_transaction(r->db, change_tx, &c);
        if (k < 0) {
                event_list_clear(&c.events);
                return log_error_errno(k, "Registry: failed to update %s: %s", url, db_last_error(r->db));
        }
        if (!c.found)
                return route_respond_error(rr, 404, "no such entry");
        if (c.forbidden) {
                log_info("Registry: %s of %s refused for %s: not the owner.", remove ? "removal" : "keep-alive", url,
                         token_claims_get_subject(claims));
                return route_respond_error(rr, 403, "the entry was registered by another device");
        }
        emit(r, &c.events);
        if (!remove)
                schedule_deadline(r, c.deadline);
        return route_respond_empty(rr, 204, NULL, 0);
}

static int on_get_one(registry *r, route_request *rr, registry_kind kind) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        _cleanup_free_ char *url = NULL, *out = NULL;
        size_t out_size = 0;
        int k;

        k = authorize(r, rr, true, &claims);
        if (k <= 0)
                return k;
        if (route_query_check_allowed(rr, (const char *const[]) { NULL }) < 0)
                return route_respond_error(rr, 400, "no query parameters allowed");
        k = registry_url_make(kind, r->domain, route_request_get_param(rr, 0), &url);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return route_respond_error(rr, 400, "path: expected a lowercase UUID");
        k = load_entry(r, url, &out, &out_size);
        if (k == -ENOENT)
                return route_respond_error(rr, 404, "no such entry");
        if (k < 0)
                return k;
        return respond_text(rr, 200, NULL, 0, out, out_size);
}

/* --- discovery ---------------------------------------------------------------------------- */

enum {
        Q_URL,
        Q_USER,
        Q_STATUS,
        Q_RESOURCE,
        Q_SCHEME,
        Q_TAG,
        _Q_MAX,
};

static const char *const query_names[_Q_MAX] = {
        [Q_URL] = "url", [Q_USER] = "user", [Q_STATUS] = "status",
        [Q_RESOURCE] = "resource", [Q_SCHEME] = "scheme", [Q_TAG] = "tag",
};

/* Parameters ?1 kind, ?2 cursor, ?3 url, ?4 user, ?5 status, ?6 resource,
 * ?7 scheme, ?8 tag, ?9 limit. The text depends only on which criteria
 * are given, so at most 2^6 statements end up in the statement cache.
 *
 * With a resource, scheme or tag, the first of them drives the query
 * from entry_values' primary key in url order (CROSS JOIN keeps SQLite
 * from reordering), and the rest are probes of that same key; otherwise
 * an index of entries with (kind, user|status, url) does. Either way a
 * page reads about `limit` index entries past the cursor, however many
 * entries there are. */
static int build_query(unsigned mask, char **ret) {
        _cleanup_free_ char *sql = NULL;
        size_t size = 0;
        FILE *f;
        int drive = -1;

        for (int q = Q_RESOURCE; q <= Q_TAG; q++)
                if (mask & (1U << q)) {
                        drive = q;
                        break;
                }
        f = open_memstream(&sql, &size);
        if (!f)
                return -ENOMEM;
        if (drive >= 0)
                fprintf(f,
                        "SELECT e.url, " ENTRY_COLUMNS " FROM entry_values d CROSS JOIN entries e ON e.id = d.entry "
                        "WHERE d.list = %d AND d.kind = ?1 AND d.value = ?%d AND d.url > ?2",
                        drive - Q_RESOURCE, 6 + drive - Q_RESOURCE);
        else
                fprintf(f, "SELECT e.url, " ENTRY_COLUMNS " FROM entries e WHERE e.kind = ?1 AND e.url > ?2");
        if (mask & (1U << Q_URL))
                fputs(" AND e.url = ?3", f);
        if (mask & (1U << Q_USER))
                fputs(" AND e.user = ?4", f);
        if (mask & (1U << Q_STATUS))
                fputs(" AND e.status = ?5", f);
        for (int q = Q_RESOURCE; q <= Q_TAG; q++)
                if ((mask & (1U << q)) && q != drive)
                        fprintf(f,
                                " AND EXISTS (SELECT 1 FROM entry_values x WHERE x.list = %d AND x.kind = ?1 "
                                "AND x.value = ?%d AND x.url = e.url)",
                                q - Q_RESOURCE, 6 + q - Q_RESOURCE);
        fprintf(f, " ORDER BY %s.url LIMIT ?9", drive >= 0 ? "d" : "e");
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(sql);
        return 0;
}

static int on_list(registry *r, route_request *rr, registry_kind kind) {
        static const char *const allowed[] = { "url", "user", "status", "resource", "scheme", "tag", "limit", "cursor", NULL };
        _cleanup_token_claims_ token_claims *claims = NULL;
        char *values[_Q_MAX] = {};
        _cleanup_free_ char *limit_s = NULL, *cursor = NULL, *sql = NULL, *last = NULL;
        unsigned long limit = REGISTRY_PAGE_DEFAULT;
        unsigned mask = 0;
        _cleanup_free_ char *text = NULL;
        size_t n = 0, text_size = 0;
        sqlite3_stmt *s;
        FILE *f = NULL;
        int k;

        k = authorize(r, rr, true, &claims);
        if (k <= 0)
                return k;
        if (route_query_check_allowed(rr, allowed) < 0)
                return route_respond_error(rr, 400,
                                           "unknown query parameter (allowed: url, user, status, resource, scheme, tag, limit, cursor)");

        for (int q = 0; q < _Q_MAX; q++) {
                k = route_query_get(rr, query_names[q], &values[q]);
                if (k == -ENOENT)
                        continue;
                if (k == -ENOMEM)
                        goto finish;
                if (k >= 0) {
                        const char *v = values[q];
                        bool ok;

                        mask |= 1U << q;
                        switch (q) {
                        case Q_URL:
                                ok = rt_address_is_valid(v);
                                break;
                        case Q_USER: {
                                _cleanup_rt_address_ rt_address *a = NULL;
                                ok = rt_address_parse(v, &a, NULL) >= 0 && rt_address_get_scheme(a) == RT_ADDRESS_USER;
                                break;
                        }
                        case Q_STATUS:
                                ok = streq(v, REGISTRY_STATUS_LIVE) || streq(v, REGISTRY_STATUS_DISCONNECTED);
                                break;
                        default:
                                ok = registry_value_is_valid(v);
                        }
                        if (ok)
                                continue;
                }
                k = route_respond_error(rr, 400,
                                        q == Q_URL ? "query parameter 'url': expected an address"
                                        : q == Q_USER ? "query parameter 'user': expected user://<idp>/<id>"
                                        : q == Q_STATUS ? "query parameter 'status': expected live or disconnected"
                                        : q == Q_RESOURCE ? "query parameter 'resource': expected 1 to 64 of [A-Za-z0-9._:-]"
                                        : q == Q_SCHEME ? "query parameter 'scheme': expected 1 to 64 of [A-Za-z0-9._:-]"
                                                        : "query parameter 'tag': expected 1 to 64 of [A-Za-z0-9._:-]");
                goto finish;
        }

        k = route_query_get(rr, "limit", &limit_s);
        if (k == -ENOMEM)
                goto finish;
        if (k != -ENOENT) {
                char *end = NULL;

                if (k >= 0 && limit_s[0] >= '1' && limit_s[0] <= '9') {
                        errno = 0;
                        limit = strtoul(limit_s, &end, 10);
                }
                if (k < 0 || !end || *end || errno != 0 || limit < 1 || limit > REGISTRY_PAGE_MAX) {
                        k = route_respond_error(rr, 400, "query parameter 'limit': expected an integer between 1 and %u",
                                                REGISTRY_PAGE_MAX);
                        goto finish;
                }
        }
        k = route_query_get(rr, "cursor", &cursor);
        if (k == -ENOMEM)
                goto finish;
        if (k != -ENOENT && (k < 0 || !rt_address_is_valid(cursor))) {
                k = route_respond_error(rr, 400, "query parameter 'cursor': expected the 'next' of a previous page");
                goto finish;
        }

        k = build_query(mask, &sql);
        if (k < 0)
                goto finish;
        k = db_prepare(r->db, sql, &s);
        if (k >= 0)
                k = db_bind_text(r->db, s, 1, kind_sql(kind));
        if (k >= 0)
                k = db_bind_text(r->db, s, 2, cursor ?: "");
        for (int q = 0; k >= 0 && q < _Q_MAX; q++)
                if (values[q])
                        k = db_bind_text(r->db, s, 3 + q, values[q]);
        /* One more than asked tells whether there is a next page. */
        if (k >= 0)
                k = db_bind_int64(r->db, s, 9, (int64_t) limit + 1);
        if (k < 0)
                goto finish;

        f = open_memstream(&text, &text_size);
        if (!f) {
                k = -ENOMEM;
                goto reset;
        }
        fprintf(f, "{\"%s\":[", kind == REGISTRY_HYPERTY ? "hyperties" : "dataObjects");
        while ((k = db_step(r->db, s)) > 0) {
                if (n == limit) {
                        /* More there: the cursor is the last url sent. */
                        _cleanup_free_ char *next = NULL;
                        json_t *v = json_string(last);

                        next = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
                        json_decref(v);
                        if (!next) {
                                k = -ENOMEM;
                                break;
                        }
                        fprintf(f, "],\"next\":%s}", next);
                        break;
                }
                if (n > 0)
                        fputc(',', f);
                k = entry_write(f, s, 1);
                if (k < 0)
                        break;
                free(last);
                last = strdup((const char *) sqlite3_column_text(s, 0));
                if (!last) {
                        k = -ENOMEM;
                        break;
                }
                n++;
        }
        if (k == 0)
                fputs("]}", f);
reset:
        db_reset(s);
        if (f && fclose(f) != 0 && k >= 0)
                k = -ENOMEM;
        if (k < 0) {
                log_error_errno(k, "Registry: discovery failed: %s", db_last_error(r->db));
                goto finish;
        }
        k = respond_text(rr, 200, NULL, 0, text, text_size);
finish:
        for (int q = 0; q < _Q_MAX; q++)
                free(values[q]);
        return k;
}

/* --- routes ------------------------------------------------------------------------------------ */

#define KIND_HANDLERS(name, kind)                                                   \
        static int name##_put(route_request *rr, void *userdata) {                  \
                return on_put(userdata, rr, kind);                                  \
        }                                                                           \
        static int name##_keepalive(route_request *rr, void *userdata) {            \
                return on_change(userdata, rr, kind, false);                        \
        }                                                                           \
        static int name##_delete(route_request *rr, void *userdata) {               \
                return on_change(userdata, rr, kind, true);                         \
        }                                                                           \
        static int name##_get(route_request *rr, void *userdata) {                  \
                return on_get_one(userdata, rr, kind);                              \
        }                                                                           \
        static int name##_list(route_request *rr, void *userdata) {                 \
                return on_list(userdata, rr, kind);                                 \
        }

KIND_HANDLERS(hyperty, REGISTRY_HYPERTY)
KIND_HANDLERS(dataobject, REGISTRY_DATAOBJECT)

static const route registry_routes[] = {
        { .method = "GET", .pattern = "/registry/hyperties", .handler = hyperty_list },
        { .method = "PUT", .pattern = "/registry/hyperties/*", .max_body = REGISTRY_BODY_MAX, .handler = hyperty_put },
        { .method = "GET", .pattern = "/registry/hyperties/*", .handler = hyperty_get },
        { .method = "DELETE", .pattern = "/registry/hyperties/*", .handler = hyperty_delete },
        { .method = "POST", .pattern = "/registry/hyperties/*/keepalive", .handler = hyperty_keepalive },
        { .method = "GET", .pattern = "/registry/dataobjects", .handler = dataobject_list },
        { .method = "PUT", .pattern = "/registry/dataobjects/*", .max_body = REGISTRY_BODY_MAX, .handler = dataobject_put },
        { .method = "GET", .pattern = "/registry/dataobjects/*", .handler = dataobject_get },
        { .method = "DELETE", .pattern = "/registry/dataobjects/*", .handler = dataobject_delete },
        { .method = "POST", .pattern = "/registry/dataobjects/*/keepalive", .handler = dataobject_keepalive },
};

int registry_add_routes(registry *r, router *rt) {
        return router_add(rt, registry_routes, ELEMENTSOF(registry_routes), r);
}
