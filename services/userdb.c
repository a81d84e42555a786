/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "encoding.h"
#include "fileio.h"
#include "id.h"
#include "log.h"
#include "password-hash.h"
#include "userdb.h"


/* Own file, own versions: scripts[i] takes the schema from i to i+1. */
static const char *const migrations[] = {
        /* 1 */
        "CREATE TABLE users ("
        "  name TEXT PRIMARY KEY,"
        "  password_hash TEXT NOT NULL,"
        "  created_usec INTEGER NOT NULL,"
        "  last_login_usec INTEGER"
        ");",
};

typedef struct failure {
        char name[USERDB_NAME_MAX + 1];
        usec_t window_start;
        unsigned count;
} failure;

struct userdb {
        db *db;
        char *domain;
        unsigned log2_n;
        /* Checked against for unknown names, so that they take as long
         * as known ones. Made on first need. */
        char *dummy_hash;
        failure *failures;
        size_t n_failures;
};

bool userdb_name_is_valid(const char *name) {
        size_t n;

        if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
                return false;
        for (n = 0; name[n]; n++)
                if (n >= USERDB_NAME_MAX || !((name[n] >= 'a' && name[n] <= 'z') || (name[n] >= '0' && name[n] <= '9') ||
                                             strchr("._-", name[n])))
                        return false;
        return true;
}

/* --- the store ----------------------------------------------------------------------- */

int userdb_new(const char *state_dir, const char *domain, userdb **ret) {
        _cleanup_free_ char *path = NULL, *reason = NULL;
        _cleanup_userdb_ userdb *u = NULL;
        int r;

        if (!state_dir || !domain || !*domain || !ret)
                return -EINVAL;
        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->log2_n = PASSWORD_HASH_LOG2_N_DEFAULT;
        u->domain = strdup(domain);
        if (!u->domain)
                return -ENOMEM;
        if (asprintf(&path, "%s/%s", state_dir, USERDB_FILE_NAME) < 0)
                return -ENOMEM;
        r = db_open(path, DB_OPEN_MKDIR, &u->db, &reason);
        if (r < 0)
                return log_error_errno(r, "Failed to open %s: %s", path, reason ?: strerror(-r));
        r = db_migrate(u->db, migrations, ELEMENTSOF(migrations));
        if (r == -EPROTO)
                return log_error_errno(r, "%s was written by a newer rethink-domain (schema above %zu).", path,
                                       ELEMENTSOF(migrations));
        if (r < 0)
                return log_error_errno(r, "Failed to migrate %s: %s", path, db_last_error(u->db));
        *ret = TAKE_PTR(u);
        return 0;
}

userdb *userdb_free(userdb *u) {
        if (!u)
                return NULL;
        db_close(u->db);
        free(u->domain);
        free(u->dummy_hash);
        free(u->failures);
        free(u);
        return NULL;
}

void userdb_set_kdf_cost(userdb *u, unsigned log2_n) {
        if (log2_n >= PASSWORD_HASH_LOG2_N_MIN && log2_n <= PASSWORD_HASH_LOG2_N_MAX) {
                u->log2_n = log2_n;
                free(u->dummy_hash);
                u->dummy_hash = NULL;
        }
}

int userdb_address(const userdb *u, const char *name, char **ret) {
        if (!u || !userdb_name_is_valid(name) || !ret)
                return -EINVAL;
        return asprintf(ret, "user://%s/%s", u->domain, name) < 0 ? -ENOMEM : 0;
}

static const char *password_problem(const char *password) {
        size_t n;

        if (!password)
                return "missing password";
        n = strlen(password);
        if (n < USERDB_PASSWORD_MIN)
                return "password too short (at least 8 bytes)";
        if (n > USERDB_PASSWORD_MAX)
                return "password too long (at most 1024 bytes)";
        return NULL;
}

int userdb_add(userdb *u, const char *name, const char *password, const char **ret_reason) {
        _cleanup_free_ char *hash = NULL;
        const char *problem;
        sqlite3_stmt *s;
        int r;

        if (!u)
                return -EINVAL;
        if (!userdb_name_is_valid(name)) {
                if (ret_reason)
                        *ret_reason = "invalid name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit";
                return -EINVAL;
        }
        problem = password_problem(password);
        if (problem) {
                if (ret_reason)
                        *ret_reason = problem;
                return -EINVAL;
        }
        r = password_hash_new(password, u->log2_n, &hash);
        if (r < 0)
                return r;
        r = db_prepare(u->db,
                       "INSERT INTO users (name, password_hash, created_usec) VALUES (?1, ?2, ?3)", &s);
        if (r < 0)
                return r;
        if ((r = db_bind_text(u->db, s, 1, name)) < 0 || (r = db_bind_text(u->db, s, 2, hash)) < 0 ||
            (r = db_bind_int64(u->db, s, 3, (int64_t) now(CLOCK_REALTIME))) < 0)
                return r;
        r = db_step_done(u->db, s);
        if (r == -EEXIST && ret_reason)
                *ret_reason = "a user of that name exists";
        return r < 0 ? r : 0;
}

int userdb_remove(userdb *u, const char *name) {
        sqlite3_stmt *s;
        int r;

        if (!u)
                return -EINVAL;
        if (!userdb_name_is_valid(name))
                return -ENOENT;
        r = db_prepare(u->db, "DELETE FROM users WHERE name = ?1", &s);
        if (r < 0)
                return r;
        r = db_bind_text(u->db, s, 1, name);
        if (r < 0)
                return r;
        r = db_step_done(u->db, s);
        if (r < 0)
                return r;
        return r == 0 ? -ENOENT : 0;
}

int userdb_list_json(userdb *u, json_t **ret) {
        json_t *list, *o;
        sqlite3_stmt *s;
        int r;

        if (!u || !ret)
                return -EINVAL;
        list = json_array();
        if (!list)
                return -ENOMEM;
        r = db_prepare(u->db, "SELECT name, created_usec, last_login_usec FROM users ORDER BY name", &s);
        while (r >= 0 && (r = db_step(u->db, s)) > 0) {
                _cleanup_free_ char *address = NULL;
                const char *name = (const char *) sqlite3_column_text(s, 0);

                o = NULL;
                if (userdb_address(u, name, &address) >= 0)
                        o = json_pack("{s:s, s:s, s:I, s:o}", "name", name, "address", address, "created_usec",
                                      (json_int_t) sqlite3_column_int64(s, 1), "last_login_usec",
                                      sqlite3_column_type(s, 2) == SQLITE_NULL ?
                                              json_null() :
                                              json_integer(sqlite3_column_int64(s, 2)));
                if (!o || json_array_append_new(list, o) < 0) {
                        db_reset(s);
                        r = -ENOMEM;
                }
        }
        if (r < 0) {
                json_decref(list);
                return r;
        }
        o = json_pack("{s:o}", "users", list);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

static int get_hash(userdb *u, const char *name, char **ret) {
        sqlite3_stmt *s;
        char *h;
        int r;

        r = db_prepare(u->db, "SELECT password_hash FROM users WHERE name = ?1", &s);
        if (r < 0)
                return r;
        r = db_bind_text(u->db, s, 1, name);
        if (r < 0)
                return r;
        r = db_step(u->db, s);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        h = strdup((const char *) sqlite3_column_text(s, 0));
        db_reset(s);
        if (!h)
                return -ENOMEM;
        *ret = h;
        return 0;
}

static void touch_last_login(userdb *u, const char *name) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(u->db, "UPDATE users SET last_login_usec = ?2 WHERE name = ?1", &s);
        if (r >= 0 && (r = db_bind_text(u->db, s, 1, name)) >= 0 &&
            (r = db_bind_int64(u->db, s, 2, (int64_t) now(CLOCK_REALTIME))) >= 0)
                r = db_step_done(u->db, s);
        if (r < 0)
                log_warning_errno(r, "Failed to record the login of %s: %s", name, db_last_error(u->db));
}

/* --- failed attempts ------------------------------------------------------------------- */

static failure *failure_find(userdb *u, const char *name) {
        for (size_t i = 0; i < u->n_failures; i++)
                if (streq(u->failures[i].name, name))
                        return u->failures + i;
        return NULL;
}

static void failure_drop(userdb *u, failure *f) {
        *f = u->failures[--u->n_failures];
}

static int failure_record(userdb *u, const char *name, usec_t t) {
        failure *f = failure_find(u, name);

        if (f && t - f->window_start >= USERDB_FAILURE_WINDOW_USEC) {
                f->window_start = t;
                f->count = 0;
        }
        if (!f) {
                if (u->n_failures >= USERDB_FAILURE_TABLE_MAX) {
                        /* Full: forget the windows that are over, and if
                         * that is not enough the oldest one. Someone
                         * spraying names can thus shorten a lock-out,
                         * never lock anyone out. */
                        size_t oldest = 0;

                        for (size_t i = u->n_failures; i > 0; i--)
                                if (t - u->failures[i - 1].window_start >= USERDB_FAILURE_WINDOW_USEC)
                                        failure_drop(u, u->failures + i - 1);
                        if (u->n_failures >= USERDB_FAILURE_TABLE_MAX) {
                                for (size_t i = 1; i < u->n_failures; i++)
                                        if (u->failures[i].window_start < u->failures[oldest].window_start)
                                                oldest = i;
                                failure_drop(u, u->failures + oldest);
                        }
                }
                if (!u->failures) {
                        u->failures = calloc(USERDB_FAILURE_TABLE_MAX, sizeof(failure));
                        if (!u->failures)
                                return -ENOMEM;
                }
                f = u->failures + u->n_failures++;
                *f = (failure) { .window_start = t };
                strncpy(f->name, name, USERDB_NAME_MAX);
        }
        f->count++;
        return 0;
}

int userdb_authenticate(userdb *u, const char *name, const char *password, usec_t t,
                       unsigned *ret_retry_after_sec) {
        _cleanup_free_ char *hash = NULL;
        failure *f;
        int r;

        if (!u)
                return -EINVAL;
        /* Names and passwords no user can have are refused at no cost: they
         * tell an attacker nothing. */
        if (!userdb_name_is_valid(name) || !password || strlen(password) > USERDB_PASSWORD_MAX)
                return -EACCES;
        if (t == 0)
                t = now(CLOCK_MONOTONIC);

        f = failure_find(u, name);
        if (f && t - f->window_start < USERDB_FAILURE_WINDOW_USEC && f->count >= USERDB_FAILURES_MAX) {
                if (ret_retry_after_sec)
                        *ret_retry_after_sec =
                                (unsigned) ((f->window_start + USERDB_FAILURE_WINDOW_USEC - t + USEC_PER_SEC - 1) /
                                            USEC_PER_SEC);
                return -EBUSY;
        }

        r = get_hash(u, name, &hash);
        if (r == -ENOENT) {
                if (!u->dummy_hash) {
                        r = password_hash_new("not a password of anyone", u->log2_n, &u->dummy_hash);
                        if (r < 0)
                                return r;
                }
                (void) password_hash_verify(password, u->dummy_hash);
                r = -EACCES;
        } else if (r < 0)
                return log_error_errno(r, "Failed to look up user %s: %s", name, db_last_error(u->db));
        else {
                r = password_hash_verify(password, hash);
                if (r == -EINVAL) {
                        log_error("The stored password hash of user %s is malformed; the user cannot log in.", name);
                        r = -EACCES;
                }
        }
        if (r == -EACCES) {
                if (failure_record(u, name, t) < 0)
                        return -ENOMEM;
                return -EACCES;
        }
        if (r < 0)
                return r;

        f = failure_find(u, name);
        if (f)
                failure_drop(u, f);
        touch_last_login(u, name);
        return 0;
}

/* --- the admin API ------------------------------------------------------------------- */

static int add_handler(route_request *rr, void *userdata) {
        userdb *u = userdata;
        _cleanup_free_ char *address = NULL;
        json_auto_t *body = NULL, *o = NULL;
        const char *name = NULL, *password = NULL, *key, *reason = NULL;
        const uint8_t *data;
        json_error_t e;
        json_t *v;
        size_t size;
        int r;

        if (route_query_check_allowed(rr, (const char *const[]) { NULL }) < 0)
                return route_respond_error(rr, 400, "no query parameters allowed");
        data = route_request_get_body(rr, &size);
        body = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, &e);
        if (!json_is_object(body))
                return route_respond_error(rr, 400, "body: expected a JSON object {\"name\", \"password\"}");
        json_object_foreach(body, key, v) {
                if (streq(key, "name") && json_is_string(v) && json_string_length(v) == strlen(json_string_value(v)))
                        name = json_string_value(v);
                else if (streq(key, "password") && json_is_string(v) &&
                         json_string_length(v) == strlen(json_string_value(v)))
                        password = json_string_value(v);
                else if (streq(key, "name") || streq(key, "password"))
                        return route_respond_error(rr, 400, "member '%s': expected a string without NUL", key);
                else
                        return route_respond_error(rr, 400, "unknown member '%s'", key);
        }
        if (!name)
                return route_respond_error(rr, 400, "member 'name': missing");

        r = userdb_add(u, name, password, &reason);
        if (r == -EINVAL)
                return route_respond_error(rr, 400, "%s", reason ?: "invalid user");
        if (r == -EEXIST)
                return route_respond_error(rr, 409, "user '%s' exists", name);
        if (r < 0)
                return log_error_errno(r, "Failed to add user %s: %s", name, db_last_error(u->db));
        log_info("User %s added.", name);
        r = userdb_address(u, name, &address);
        if (r < 0)
                return r;
        o = json_pack("{s:s, s:s}", "name", name, "address", address);
        if (!o)
                return -ENOMEM;
        return route_respond_json(rr, 201, o, NULL, 0);
}

static int list_handler(route_request *rr, void *userdata) {
        userdb *u = userdata;
        json_auto_t *o = NULL;
        int r;

        if (route_query_check_allowed(rr, (const char *const[]) { NULL }) < 0)
                return route_respond_error(rr, 400, "no query parameters allowed");
        r = userdb_list_json(u, &o);
        if (r < 0)
                return log_error_errno(r, "Failed to list the users: %s", db_last_error(u->db));
        return route_respond_json(rr, 200, o, NULL, 0);
}

static int remove_handler(route_request *rr, void *userdata) {
        userdb *u = userdata;
        const char *name = route_request_get_param(rr, 0);
        int r;

        r = userdb_remove(u, name);
        if (r == -ENOENT)
                return route_respond_error(rr, 404, "no such user");
        if (r < 0)
                return log_error_errno(r, "Failed to remove user %s: %s", name, db_last_error(u->db));
        log_info("User %s removed.", name);
        return route_respond_empty(rr, 204, NULL, 0);
}

static const route routes[] = {
        { .method = "POST", .pattern = "/admin/users", .flags = ROUTE_ADMIN, .max_body = 4096, .handler = add_handler },
        { .method = "GET", .pattern = "/admin/users", .flags = ROUTE_ADMIN, .handler = list_handler },
        { .method = "DELETE", .pattern = "/admin/users/*", .flags = ROUTE_ADMIN, .handler = remove_handler },
};

int userdb_add_routes(userdb *u, router *r) {
        return router_add(r, routes, ELEMENTSOF(routes), u);
}
