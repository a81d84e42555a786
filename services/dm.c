/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dm.h"
#include "id.h"
#include "log.h"
#include "sign.h"
#include "token.h"
#include "time-util.h"

#define VERSION_MAX 64
#define ARCH_MAX 32
#define JSON_SAFE_INT_MAX 9007199254740991LL

struct dm {
        sd_event *event;
        db *db;
        dm_lifetimes lifetimes;
        sd_event_source *expiry;
};

static int dm_schedule(dm *m);

int dm_new(sd_event *e, db *d, dm **ret) {
        dm *m;

        if (!e || !d || !ret)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        m->db = d;
        m->lifetimes = (dm_lifetimes) { .default_sec = 86400, .min_sec = 60, .max_sec = 2592000 };
        *ret = m;
        return 0;
}

dm *dm_free(dm *m) {
        if (!m)
                return NULL;
        sd_event_source_disable_unref(m->expiry);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

void dm_set_lifetimes(dm *m, const dm_lifetimes *l) {
        m->lifetimes = *l;
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool token_is_valid(const char *s, size_t max, const char *extra) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > max || !is_alnum(s[0]))
                return false;
        for (; *s; s++)
                if (!is_alnum(*s) && !strchr(extra, *s))
                        return false;
        return true;
}

bool dm_endpoint_is_valid(const char *s) {
        return token_is_valid(s, DM_ENDPOINT_MAX, "._:-");
}

/* --- expiry ------------------------------------------------------------------ */

static int expire_tx(db *d, void *userdata) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(d,
                       "UPDATE devices SET state = 'expired' WHERE state = 'registered' AND expires_usec <= ?1 "
                       "RETURNING endpoint",
                       &s);
        if (r < 0)
                return r;
        r = db_bind_int64(d, s, 1, (int64_t) now(CLOCK_REALTIME));
        if (r < 0)
                return r;
        while ((r = db_step(d, s)) > 0)
                log_info("Registration of endpoint %s expired.", (const char *) sqlite3_column_text(s, 0));
        return r;
}

static int on_expiry(sd_event_source *s, uint64_t usec, void *userdata) {
        dm *m = userdata;
        int r;

        r = db_transaction(m->db, expire_tx, NULL);
        if (r < 0)
                log_error_errno(r, "Failed to expire registrations: %s", db_last_error(m->db));
        (void) dm_schedule(m);
        return 0;
}

/* Arms the one timer for the earliest registration to run out. Stored
 * times are wall-clock (they must survive restarts); the timer is
 * monotonic, and on_expiry() looks at the wall clock again, so a clock
 * step only makes it fire early or late once. */
static int dm_schedule(dm *m) {
        sqlite3_stmt *s;
        usec_t next = USEC_INFINITY, t;
        int r;

        r = db_prepare(m->db, "SELECT MIN(expires_usec) FROM devices WHERE state = 'registered'", &s);
        if (r < 0)
                return r;
        r = db_step(m->db, s);
        if (r < 0)
                return r;
        if (r > 0) {
                if (sqlite3_column_type(s, 0) != SQLITE_NULL)
                        next = (usec_t) sqlite3_column_int64(s, 0);
                db_reset(s);
        }
        if (next != USEC_INFINITY) {
                t = now(CLOCK_REALTIME);
                next = next > t ? next - t : 0;
        }
        r = event_reset_time_relative(m->event, &m->expiry, next, on_expiry, m, "dm-expiry");
        if (r < 0)
                return log_error_errno(r, "Failed to arm the registration expiry timer: %m");
        return 0;
}

int dm_start(dm *m) {
        int r;

        r = db_transaction(m->db, expire_tx, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to expire registrations: %s", db_last_error(m->db));
        return dm_schedule(m);
}

/* --- request parsing ------------------------------------------------------------ */

typedef struct device_info {
        char *public_key;
        char *token_key; /* PEM, or NULL */
        const char *runtime_version, *arch;
        int64_t free_bytes; /* -1: not given */
        json_t *json;
} device_info;

static void device_info_done(device_info *i) {
        json_decref(i->json);
        free(i->public_key);
        free(i->token_key);
}

/* The registration body; registering requires publicKey, an update
 * must not carry it (a device cannot change its key). */
static int parse_info(route_request *rr, bool registering, device_info *ret) {
        const uint8_t *body;
        json_error_t error;
        const char *key;
        json_t *v;
        size_t size;

        *ret = (device_info) { .free_bytes = -1 };
        body = route_request_get_body(rr, &size);
        if (size == 0 && !registering)
                return 0;
        if (size == 0)
                return route_respond_error(rr, 400, "body: expected a JSON object with publicKey");
        if (memchr(body, 0, size))
                return route_respond_error(rr, 400, "body: invalid JSON: NUL byte");
        ret->json = json_loadb((const char *) body, size, JSON_REJECT_DUPLICATES, &error);
        if (!ret->json)
                return route_respond_error(rr, 400, "body: invalid JSON at offset %d", error.position);
        if (!json_is_object(ret->json))
                return route_respond_error(rr, 400, "body: expected a JSON object");

        json_object_foreach(ret->json, key, v) {
                if (streq(key, "publicKey")) {
                        _cleanup_sign_key_ sign_key *k = NULL;

                        if (!registering)
                                return route_respond_error(rr, 400, "field 'publicKey': cannot change on update");
                        if (!json_is_string(v) || sign_key_from_public_base64url(json_string_value(v), &k) < 0)
                                return route_respond_error(
                                        rr, 400, "field 'publicKey': expected a base64url Ed25519 public key");
                        /* One spelling per key: compare keys as strings later. */
                        if (sign_key_get_public_base64url(k, &ret->public_key) < 0)
                                return -ENOMEM;
                } else if (streq(key, "tokenKey")) {
                        _cleanup_token_key_ token_key *k = NULL;

                        if (!registering)
                                return route_respond_error(rr, 400, "field 'tokenKey': cannot change on update");
                        if (!json_is_string(v) || token_key_from_public_pem(json_string_value(v), SIZE_MAX, &k) < 0)
                                return route_respond_error(
                                        rr, 400, "field 'tokenKey': expected a PEM P-256 public key");
                        if (token_key_get_public_pem(k, &ret->token_key) < 0)
                                return -ENOMEM;
                } else if (streq(key, "runtimeVersion")) {
                        if (!json_is_string(v) || !token_is_valid(json_string_value(v), VERSION_MAX, ".+-"))
                                return route_respond_error(rr, 400,
                                                           "field 'runtimeVersion': expected 1 to %d characters of [A-Za-z0-9.+-]",
                                                           VERSION_MAX);
                        ret->runtime_version = json_string_value(v);
                } else if (streq(key, "arch")) {
                        if (!json_is_string(v) || !token_is_valid(json_string_value(v), ARCH_MAX, "_-"))
                                return route_respond_error(rr, 400,
                                                           "field 'arch': expected 1 to %d characters of [A-Za-z0-9_-]",
                                                           ARCH_MAX);
                        ret->arch = json_string_value(v);
                } else if (streq(key, "freeBytes")) {
                        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                            json_integer_value(v) > JSON_SAFE_INT_MAX)
                                return route_respond_error(
                                        rr, 400, "field 'freeBytes': expected an integer between 0 and %lld",
                                        JSON_SAFE_INT_MAX);
                        ret->free_bytes = (int64_t) json_integer_value(v);
                } else
                        return route_respond_error(rr, 400,
                                                   "body: unknown field (allowed: publicKey, tokenKey, runtimeVersion, arch, freeBytes)");
        }
        if (registering && !ret->public_key)
                return route_respond_error(rr, 400, "field 'publicKey': missing");
        return 1;
}

/* lt: absent gives the default; returns 1 with *ret, or an answer sent. */
static int parse_lifetime(dm *m, route_request *rr, bool with_default, unsigned *ret) {
        _cleanup_free_ char *lt = NULL;
        unsigned long long v;
        char *end;
        int r;

        r = route_query_get(rr, "lt", &lt);
        if (r == -ENOENT) {
                *ret = with_default ? m->lifetimes.default_sec : 0;
                return 1;
        }
        if (r == -ENOMEM)
                return r;
        if (r == 0 && lt[0] >= '0' && lt[0] <= '9') {
                errno = 0;
                v = strtoull(lt, &end, 10);
                if (errno == 0 && *end == '\0' && v >= m->lifetimes.min_sec && v <= m->lifetimes.max_sec) {
                        *ret = (unsigned) v;
                        return 1;
                }
        }
        return route_respond_error(rr, 400, "query parameter 'lt': expected an integer between %u and %u",
                                   m->lifetimes.min_sec, m->lifetimes.max_sec);
}

/* --- JSON views ------------------------------------------------------------------ */

static json_t *time_json(sqlite3_stmt *s, int col) {
        char buf[FORMAT_RFC3339_MAX];

        if (sqlite3_column_type(s, col) == SQLITE_NULL)
                return json_null();
        return json_string(format_rfc3339(buf, sizeof(buf), (usec_t) sqlite3_column_int64(s, col)) ?: "");
}

static json_t *text_json(sqlite3_stmt *s, int col) {
        if (sqlite3_column_type(s, col) == SQLITE_NULL)
                return json_null();
        return json_string((const char *) sqlite3_column_text(s, col));
}

#define DEVICE_COLUMNS                                                                                   \
        "endpoint, id, public_key, runtime_version, arch, free_bytes, lifetime_sec, state, registered_usec, " \
        "updated_usec, expires_usec, claimed_usec, token_key, address, address_usec"

static json_t *device_json(sqlite3_stmt *s) {
        json_t *o = json_object();

        if (!o)
                return NULL;
        if (json_object_set_new(o, "endpoint", text_json(s, 0)) < 0 || json_object_set_new(o, "id", text_json(s, 1)) < 0 ||
            json_object_set_new(o, "publicKey", text_json(s, 2)) < 0 ||
            json_object_set_new(o, "runtimeVersion", text_json(s, 3)) < 0 ||
            json_object_set_new(o, "arch", text_json(s, 4)) < 0 ||
            json_object_set_new(o, "freeBytes", sqlite3_column_type(s, 5) == SQLITE_NULL
                                                        ? json_null()
                                                        : json_integer(sqlite3_column_int64(s, 5))) < 0 ||
            json_object_set_new(o, "lifetime", json_integer(sqlite3_column_int64(s, 6))) < 0 ||
            json_object_set_new(o, "state", text_json(s, 7)) < 0 ||
            json_object_set_new(o, "claimed", json_boolean(sqlite3_column_type(s, 11) != SQLITE_NULL)) < 0 ||
            json_object_set_new(o, "registeredAt", time_json(s, 8)) < 0 ||
            json_object_set_new(o, "updatedAt", time_json(s, 9)) < 0 ||
            json_object_set_new(o, "expiresAt", time_json(s, 10)) < 0 ||
            json_object_set_new(o, "claimedAt", time_json(s, 11)) < 0 ||
            json_object_set_new(o, "tokenKey", text_json(s, 12)) < 0 ||
            json_object_set_new(o, "address", text_json(s, 13)) < 0 ||
            json_object_set_new(o, "addressUpdated", time_json(s, 14)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* One device as JSON, or NULL with *ret_error: -ENOENT when unknown. */
static json_t *device_lookup(dm *m, const char *column, const char *value, int *ret_error) {
        sqlite3_stmt *s;
        json_t *o;
        int r;

        /* column is one of our constants; the cache wants constant text. */
        if (streq(column, "id"))
                r = db_prepare(m->db, "SELECT " DEVICE_COLUMNS " FROM devices WHERE id = ?1", &s);
        else
                r = db_prepare(m->db, "SELECT " DEVICE_COLUMNS " FROM devices WHERE endpoint = ?1", &s);
        if (r >= 0)
                r = db_bind_text(m->db, s, 1, value);
        if (r >= 0)
                r = db_step(m->db, s);
        if (r <= 0) {
                *ret_error = r == 0 ? -ENOENT : r;
                return NULL;
        }
        o = device_json(s);
        db_reset(s);
        if (!o)
                *ret_error = -ENOMEM;
        return o;
}

int dm_get_device(dm *m, const char *endpoint, json_t **ret) {
        json_t *o;
        int r = 0;

        if (!m || !endpoint || !ret)
                return -EINVAL;
        o = device_lookup(m, "endpoint", endpoint, &r);
        if (!o)
                return r;
        *ret = o;
        return 0;
}

/* --- register: POST /dm/rd?ep=&lt= ----------------------------------------------- */

typedef struct registration {
        const char *endpoint;
        const char *address; /* NULL: unknown */
        device_info *info;
        unsigned lifetime;
        char id[ID_UUID_STRING_MAX];
        int status;
} registration;

/* The source address ?11 (NULL: unknown, keep the old one) at time ?6;
 * address_usec moves only when the address changes. SQLite evaluates
 * every expression of an UPDATE on the old row. */
#define ADDRESS_SET                                                                                   \
        "address = COALESCE(?11, address), "                                                          \
        "address_usec = CASE WHEN ?11 IS NULL OR address IS ?11 THEN address_usec ELSE ?6 END"

/* The client's IP address, NULL when it has none (a Unix socket). */
static const char *source_address(route_request *rr, char *buf, size_t size) {
        return h2_request_get_peer_address(route_request_get_request(rr), buf, size) < 0 ? NULL : buf;
}

static int register_tx(db *d, void *userdata) {
        registration *g = userdata;
        usec_t t = now(CLOCK_REALTIME);
        usec_t expires = t + g->lifetime * USEC_PER_SEC;
        sqlite3_stmt *s;
        int r;

        r = db_prepare(d, "SELECT id, public_key, token_key FROM devices WHERE endpoint = ?1", &s);
        if (r < 0)
                return r;
        r = db_bind_text(d, s, 1, g->endpoint);
        if (r < 0)
                return r;
        r = db_step(d, s);
        if (r < 0)
                return r;
        if (r > 0) {
                bool same = streq((const char *) sqlite3_column_text(s, 1), g->info->public_key);
                /* Registration needs no token (docs/protocol.md), and the
                 * Ed25519 key is public: the P-256 key that gets IdM
                 * tokens must not be replaceable by whoever knows it. It
                 * is bound like publicKey, once given. */
                bool token_key_clash = g->info->token_key && sqlite3_column_type(s, 2) != SQLITE_NULL &&
                                       !streq((const char *) sqlite3_column_text(s, 2), g->info->token_key);

                snprintf(g->id, sizeof(g->id), "%s", (const char *) sqlite3_column_text(s, 0));
                db_reset(s);
                if (!same)
                        return -EKEYREJECTED;
                if (token_key_clash)
                        return -EADDRINUSE;

                r = db_prepare(d,
                               "UPDATE devices SET runtime_version = ?2, arch = ?3, free_bytes = ?4, lifetime_sec = ?5, "
                               "state = 'registered', updated_usec = ?6, expires_usec = ?7, "
                               "token_key = COALESCE(?10, token_key), " ADDRESS_SET " WHERE endpoint = ?1",
                               &s);
                g->status = 200;
        } else {
                r = id_uuid_new(g->id);
                if (r < 0)
                        return r;
                r = db_prepare(d,
                               "INSERT INTO devices (endpoint, runtime_version, arch, free_bytes, lifetime_sec, state, "
                               "updated_usec, expires_usec, id, public_key, registered_usec, token_key, address, "
                               "address_usec) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, 'registered', ?6, ?7, ?8, ?9, ?6, ?10, ?11, "
                               "CASE WHEN ?11 IS NULL THEN NULL ELSE ?6 END)",
                               &s);
                g->status = 201;
        }
        if (r < 0)
                return r;
        if ((r = db_bind_text(d, s, 1, g->endpoint)) < 0 || (r = db_bind_text(d, s, 2, g->info->runtime_version)) < 0 ||
            (r = db_bind_text(d, s, 3, g->info->arch)) < 0 ||
            (r = g->info->free_bytes < 0 ? db_bind_null(d, s, 4) : db_bind_int64(d, s, 4, g->info->free_bytes)) < 0 ||
            (r = db_bind_int64(d, s, 5, g->lifetime)) < 0 || (r = db_bind_int64(d, s, 6, (int64_t) t)) < 0 ||
            (r = db_bind_int64(d, s, 7, (int64_t) expires)) < 0 ||
            (r = g->info->token_key ? db_bind_text(d, s, 10, g->info->token_key) : db_bind_null(d, s, 10)) < 0 ||
            (r = g->address ? db_bind_text(d, s, 11, g->address) : db_bind_null(d, s, 11)) < 0)
                return r;
        if (g->status == 201 &&
            ((r = db_bind_text(d, s, 8, g->id)) < 0 || (r = db_bind_text(d, s, 9, g->info->public_key)) < 0))
                return r;
        return db_step_done(d, s);
}

static int respond_device(dm *m, route_request *rr, int status, const char *column, const char *value,
                          const H2Header *headers, size_t n_headers) {
        json_t *o;
        int r = 0;

        o = device_lookup(m, column, value, &r);
        if (!o)
                return r;
        r = route_respond_json(rr, status, o, headers, n_headers);
        json_decref(o);
        return r;
}

static int register_handler(route_request *rr, void *userdata) {
        static const char *const allowed[] = { "ep", "lt", NULL };
        dm *m = userdata;
        _cleanup_free_ char *ep = NULL, *location = NULL;
        _cleanup_(device_info_done) device_info info = {};
        char address[INET6_ADDRSTRLEN];
        registration g = {};
        unsigned lifetime;
        int r;

        if (route_query_check_allowed(rr, allowed) < 0)
                return route_respond_error(rr, 400, "query: unknown parameter (allowed: ep, lt)");
        r = route_query_get(rr, "ep", &ep);
        if (r == -ENOENT)
                return route_respond_error(rr, 400, "query parameter 'ep': missing");
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !dm_endpoint_is_valid(ep))
                return route_respond_error(rr, 400,
                                           "query parameter 'ep': expected 1 to %d characters of [A-Za-z0-9._:-], "
                                           "starting with a letter or digit",
                                           DM_ENDPOINT_MAX);
        r = parse_lifetime(m, rr, true, &lifetime);
        if (r <= 0)
                return r;
        r = parse_info(rr, true, &info);
        if (r <= 0)
                return r;

        g = (registration) { .endpoint = ep, .address = source_address(rr, address, sizeof(address)), .info = &info,
                             .lifetime = lifetime };
        r = db_transaction(m->db, register_tx, &g);
        if (r == -EKEYREJECTED)
                return route_respond_error(rr, 409, "endpoint is registered with another public key");
        if (r == -EADDRINUSE)
                return route_respond_error(rr, 409, "endpoint is registered with another token key");
        if (r < 0)
                return log_error_errno(r, "Failed to store the registration of %s: %s", ep, db_last_error(m->db));
        if (g.status == 201)
                log_info("Endpoint %s registered (lifetime %us).", ep, lifetime);
        (void) dm_schedule(m);

        if (asprintf(&location, "/dm/rd/%s", g.id) < 0)
                return -ENOMEM;
        return respond_device(m, rr, g.status, "endpoint", ep, (const H2Header[]) { { "location", location } }, 1);
}

/* --- update and de-register: POST/DELETE /dm/rd/<id> ------------------------------- */

typedef struct update {
        const char *id;
        const char *address; /* NULL: unknown */
        device_info *info;
        unsigned lifetime; /* 0: keep */
        bool remove;
} update;

static int update_tx(db *d, void *userdata) {
        update *u = userdata;
        usec_t t = now(CLOCK_REALTIME);
        sqlite3_stmt *s;
        int r;

        if (u->remove) {
                r = db_prepare(d,
                               "UPDATE devices SET state = 'deregistered', updated_usec = ?2 "
                               "WHERE id = ?1 AND state = 'registered'",
                               &s);
                if (r < 0)
                        return r;
                if ((r = db_bind_text(d, s, 1, u->id)) < 0 || (r = db_bind_int64(d, s, 2, (int64_t) t)) < 0)
                        return r;
                return db_step_done(d, s);
        }

        /* Fields the update leaves out keep their values. */
        r = db_prepare(d,
                       "UPDATE devices SET lifetime_sec = COALESCE(?2, lifetime_sec), "
                       "runtime_version = COALESCE(?3, runtime_version), arch = COALESCE(?4, arch), "
                       "free_bytes = COALESCE(?5, free_bytes), updated_usec = ?6, "
                       "expires_usec = ?6 + COALESCE(?2, lifetime_sec) * 1000000, " ADDRESS_SET " "
                       "WHERE id = ?1 AND state = 'registered'",
                       &s);
        if (r < 0)
                return r;
        if ((r = db_bind_text(d, s, 1, u->id)) < 0 ||
            (r = u->lifetime > 0 ? db_bind_int64(d, s, 2, u->lifetime) : db_bind_null(d, s, 2)) < 0 ||
            (r = db_bind_text(d, s, 3, u->info->runtime_version)) < 0 || (r = db_bind_text(d, s, 4, u->info->arch)) < 0 ||
            (r = u->info->free_bytes < 0 ? db_bind_null(d, s, 5) : db_bind_int64(d, s, 5, u->info->free_bytes)) < 0 ||
            (r = db_bind_int64(d, s, 6, (int64_t) t)) < 0 ||
            (r = u->address ? db_bind_text(d, s, 11, u->address) : db_bind_null(d, s, 11)) < 0)
                return r;
        return db_step_done(d, s);
}

static int update_common(dm *m, route_request *rr, bool remove) {
        static const char *const allowed_update[] = { "lt", NULL }, *const allowed_none[] = { NULL };
        const char *id = route_request_get_param(rr, 0);
        _cleanup_(device_info_done) device_info info = { .free_bytes = -1 };
        char address[INET6_ADDRSTRLEN];
        update u = {};
        unsigned lifetime = 0;
        int r;

        if (!id_uuid_is_valid(id))
                return route_respond_error(rr, 404, "no such registration");
        if (route_query_check_allowed(rr, remove ? allowed_none : allowed_update) < 0)
                return route_respond_error(rr, 400, remove ? "query: no parameters allowed"
                                                           : "query: unknown parameter (allowed: lt)");
        if (!remove) {
                r = parse_lifetime(m, rr, false, &lifetime);
                if (r <= 0)
                        return r;
                r = parse_info(rr, false, &info);
                if (r < 0 || route_request_is_answered(rr))
                        return r;
        }

        u = (update) { .id = id, .address = source_address(rr, address, sizeof(address)), .info = &info,
                       .lifetime = lifetime, .remove = remove };
        r = db_transaction(m->db, update_tx, &u);
        if (r < 0)
                return log_error_errno(r, "Failed to update registration %s: %s", id, db_last_error(m->db));
        if (r == 0)
                /* Unknown, expired or de-registered alike: register again. */
                return route_respond_error(rr, 404, "no such registration (expired or de-registered: register again)");
        if (remove)
                log_info("Registration %s removed.", id);
        (void) dm_schedule(m);
        return route_respond_empty(rr, 204, NULL, 0);
}

static int update_handler(route_request *rr, void *userdata) {
        return update_common(userdata, rr, false);
}

static int deregister_handler(route_request *rr, void *userdata) {
        return update_common(userdata, rr, true);
}

/* --- admin ------------------------------------------------------------------------ */

static int list_handler(route_request *rr, void *userdata) {
        dm *m = userdata;
        sqlite3_stmt *s;
        json_t *list, *o;
        int r;

        list = json_array();
        if (!list)
                return -ENOMEM;
        r = db_prepare(m->db, "SELECT " DEVICE_COLUMNS " FROM devices ORDER BY endpoint", &s);
        while (r >= 0 && (r = db_step(m->db, s)) > 0) {
                o = device_json(s);
                if (!o || json_array_append_new(list, o) < 0) {
                        db_reset(s);
                        r = -ENOMEM;
                }
        }
        if (r >= 0) {
                o = json_pack("{s:o}", "devices", list);
                list = NULL;
                r = o ? route_respond_json(rr, 200, o, NULL, 0) : -ENOMEM;
                json_decref(o);
        }
        json_decref(list);
        return r;
}

static int device_handler(route_request *rr, void *userdata) {
        dm *m = userdata;
        const char *ep = route_request_get_param(rr, 0);
        int r;

        if (!dm_endpoint_is_valid(ep))
                return route_respond_error(rr, 404, "no such device");
        r = respond_device(m, rr, 200, "endpoint", ep, NULL, 0);
        if (r == -ENOENT)
                return route_respond_error(rr, 404, "no such device");
        return r;
}

static int claim_tx(db *d, void *userdata) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(d, "UPDATE devices SET claimed_usec = COALESCE(claimed_usec, ?2) WHERE endpoint = ?1", &s);
        if (r < 0)
                return r;
        if ((r = db_bind_text(d, s, 1, userdata)) < 0 || (r = db_bind_int64(d, s, 2, (int64_t) now(CLOCK_REALTIME))) < 0)
                return r;
        return db_step_done(d, s);
}

static int claim_handler(route_request *rr, void *userdata) {
        dm *m = userdata;
        const char *ep = route_request_get_param(rr, 0);
        int r;

        if (!dm_endpoint_is_valid(ep))
                return route_respond_error(rr, 404, "no such device");
        r = db_transaction(m->db, claim_tx, (void *) ep);
        if (r < 0)
                return log_error_errno(r, "Failed to claim %s: %s", ep, db_last_error(m->db));
        if (r == 0)
                return route_respond_error(rr, 404, "no such device");
        log_info("Endpoint %s claimed.", ep);
        return respond_device(m, rr, 200, "endpoint", ep, NULL, 0);
}

static const route routes[] = {
        { .method = "POST", .pattern = "/dm/rd", .max_body = 4096, .handler = register_handler },
        { .method = "POST", .pattern = "/dm/rd/*", .max_body = 4096, .handler = update_handler },
        { .method = "DELETE", .pattern = "/dm/rd/*", .max_body = 4096, .handler = deregister_handler },
        { .method = "GET", .pattern = "/admin/devices", .flags = ROUTE_ADMIN, .handler = list_handler },
        { .method = "GET", .pattern = "/admin/devices/*", .flags = ROUTE_ADMIN, .handler = device_handler },
        { .method = "POST", .pattern = "/admin/devices/*/claim", .flags = ROUTE_ADMIN, .max_body = 4096,
          .handler = claim_handler },
};

int dm_add_routes(dm *m, router *r) {
        return router_add(r, routes, ELEMENTSOF(routes), m);
}
