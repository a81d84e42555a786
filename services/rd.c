/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <search.h>
#include <string.h>

#include "log.h"
#include "rd.h"
#include "time-util.h"

typedef struct rd_sub {
        char *subscriber;
        char *runtime;
} rd_sub;

typedef struct rd_resource {
        char *resource; /* first: the tree compares entries as strings */
        char *reporter, *reporter_runtime;
        json_t *value;
        bool known; /* created (has a row), not only subscribed to */
        bool dirty;
        rd_sub *subs;
        size_t n_subs;
} rd_resource;

struct rd {
        sd_event *event;
        db *db;
        void *resources; /* tsearch tree of rd_resource, by name */
        size_t n_subscriptions;
        rd_resource **dirty;
        size_t n_dirty, n_dirty_alloc;
        sd_event_source *flush;
        rd_flushed_fn flushed;
        void *flushed_userdata;
};

static int resource_compare(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static void resource_free(void *p) {
        rd_resource *res = p;

        if (!res)
                return;
        for (size_t i = 0; i < res->n_subs; i++) {
                free(res->subs[i].subscriber);
                free(res->subs[i].runtime);
        }
        free(res->subs);
        json_decref(res->value);
        free(res->reporter);
        free(res->reporter_runtime);
        free(res->resource);
        free(res);
}

static rd_resource *resource_find(rd *r, const char *name) {
        void *n = tfind(&name, &r->resources, resource_compare);
        return n ? *(rd_resource **) n : NULL;
}

static int resource_get(rd *r, const char *name, rd_resource **ret) {
        rd_resource *res = resource_find(r, name);
        void *n;

        if (res) {
                *ret = res;
                return 0;
        }
        res = calloc(1, sizeof(*res));
        if (!res)
                return -ENOMEM;
        res->resource = strdup(name);
        if (!res->resource) {
                free(res);
                return -ENOMEM;
        }
        n = tsearch(res, &r->resources, resource_compare);
        if (!n) {
                resource_free(res);
                return -ENOMEM;
        }
        *ret = res;
        return 0;
}

/* Drops an entry that holds nothing any more. */
static void resource_gc(rd *r, rd_resource *res) {
        if (res->known || res->n_subs > 0 || res->dirty)
                return;
        (void) tdelete(res, &r->resources, resource_compare);
        resource_free(res);
}

static int set_str(char **p, const char *v) {
        char *n = NULL;

        if (streq_ptr(*p, v))
                return 0;
        if (v) {
                n = strdup(v);
                if (!n)
                        return -ENOMEM;
        }
        free(*p);
        *p = n;
        return 0;
}

static int sub_add(rd_resource *res, const char *subscriber, const char *runtime) {
        rd_sub *s;

        s = reallocarray(res->subs, res->n_subs + 1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        res->subs = s;
        s = &res->subs[res->n_subs];
        s->subscriber = strdup(subscriber);
        s->runtime = strdup(runtime);
        if (!s->subscriber || !s->runtime) {
                free(s->subscriber);
                free(s->runtime);
                return -ENOMEM;
        }
        res->n_subs++;
        return 0;
}

static int load(rd *r) {
        sqlite3_stmt *s;
        int k;

        k = db_prepare(r->db, "SELECT resource, reporter, reporter_runtime, value FROM resources", &s);
        if (k < 0)
                return k;
        while ((k = db_step(r->db, s)) > 0) {
                const char *value = (const char *) sqlite3_column_text(s, 3);
                rd_resource *res;

                k = resource_get(r, (const char *) sqlite3_column_text(s, 0), &res);
                if (k >= 0)
                        k = set_str(&res->reporter, (const char *) sqlite3_column_text(s, 1));
                if (k >= 0)
                        k = set_str(&res->reporter_runtime, (const char *) sqlite3_column_text(s, 2));
                if (k < 0) {
                        db_reset(s);
                        return k;
                }
                res->known = true;
                if (value) {
                        res->value = json_loads(value, 0, NULL);
                        if (!res->value)
                                log_warning("Stored last value of %s is not JSON; ignoring it.", res->resource);
                }
        }
        if (k < 0)
                return k;

        k = db_prepare(r->db, "SELECT resource, subscriber, runtime FROM subscriptions", &s);
        if (k < 0)
                return k;
        while ((k = db_step(r->db, s)) > 0) {
                rd_resource *res;

                k = resource_get(r, (const char *) sqlite3_column_text(s, 0), &res);
                if (k >= 0)
                        k = sub_add(res, (const char *) sqlite3_column_text(s, 1),
                                    (const char *) sqlite3_column_text(s, 2));
                if (k < 0) {
                        db_reset(s);
                        return k;
                }
                r->n_subscriptions++;
        }
        return k;
}

int rd_new(sd_event *e, db *d, rd **ret) {
        rd *r;
        int k;

        if (!e || !d || !ret)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(e);
        r->db = d;
        k = load(r);
        if (k < 0) {
                rd_free(r);
                return k;
        }
        *ret = r;
        return 0;
}

rd *rd_free(rd *r) {
        int k;

        if (!r)
                return NULL;
        k = rd_flush(r);
        if (k < 0)
                log_error_errno(k, "Failed to write the last values of %zu resources: %s", r->n_dirty,
                                db_last_error(r->db));
        sd_event_source_disable_unref(r->flush);
        tdestroy(r->resources, resource_free);
        free(r->dirty);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

/* --- last values ----------------------------------------------------------- */

static int flush_tx(db *d, void *userdata) {
        rd *r = userdata;
        sqlite3_stmt *s;
        int k;

        k = db_prepare(d,
                       "INSERT INTO resources (resource, reporter, reporter_runtime, value, updated_usec) "
                       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (resource) DO UPDATE SET "
                       "reporter = ?2, reporter_runtime = ?3, value = ?4, updated_usec = ?5",
                       &s);
        if (k < 0)
                return k;
        for (size_t i = 0; i < r->n_dirty; i++) {
                rd_resource *res = r->dirty[i];
                _cleanup_free_ char *text = NULL;

                if (res->value) {
                        text = json_dumps(res->value, JSON_COMPACT);
                        if (!text)
                                return -ENOMEM;
                }
                k = db_bind_text(d, s, 1, res->resource);
                if (k >= 0)
                        k = db_bind_text(d, s, 2, res->reporter);
                if (k >= 0)
                        k = db_bind_text(d, s, 3, res->reporter_runtime);
                if (k >= 0)
                        k = db_bind_text(d, s, 4, text);
                if (k >= 0)
                        k = db_bind_int64(d, s, 5, (int64_t) now(CLOCK_REALTIME));
                if (k >= 0)
                        k = db_step_done(d, s);
                if (k < 0)
                        return k;
        }
        return 0;
}

bool rd_has_pending(rd *r) {
        return r && r->n_dirty > 0;
}

void rd_set_flush_handler(rd *r, rd_flushed_fn fn, void *userdata) {
        r->flushed = fn;
        r->flushed_userdata = userdata;
}

int rd_flush(rd *r) {
        int k;

        if (r->n_dirty == 0)
                return 0;
        k = db_transaction(r->db, flush_tx, r);
        if (k < 0) {
                /* Kept dirty: the next flush tries again. */
                if (r->flushed)
                        r->flushed(k, r->flushed_userdata);
                return k;
        }
        for (size_t i = 0; i < r->n_dirty; i++)
                r->dirty[i]->dirty = false;
        r->n_dirty = 0;
        if (r->flush)
                (void) sd_event_source_set_enabled(r->flush, SD_EVENT_OFF);
        if (r->flushed)
                r->flushed(0, r->flushed_userdata);
        return 0;
}

static int on_flush(sd_event_source *s, void *userdata) {
        rd *r = userdata;
        int k;

        k = rd_flush(r);
        if (k < 0)
                log_error_errno(k, "Failed to write the last values of %zu resources: %s", r->n_dirty,
                                db_last_error(r->db));
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static int mark_dirty(rd *r, rd_resource *res) {
        int k;

        if (!res->dirty) {
                if (r->n_dirty == r->n_dirty_alloc) {
                        size_t a = MAX(r->n_dirty_alloc * 2, (size_t) 16);
                        rd_resource **p = reallocarray(r->dirty, a, sizeof(*p));

                        if (!p)
                                return -ENOMEM;
                        r->dirty = p;
                        r->n_dirty_alloc = a;
                }
                r->dirty[r->n_dirty++] = res;
                res->dirty = true;
        }
        if (r->n_dirty >= RD_DIRTY_MAX)
                return rd_flush(r);
        if (!r->flush) {
                k = sd_event_add_defer(r->event, &r->flush, on_flush, r);
                if (k < 0)
                        return k;
                /* Idle priority: runs once nothing else is pending, which
                 * is what makes back-to-back publications share one
                 * commit. */
                (void) sd_event_source_set_priority(r->flush, SD_EVENT_PRIORITY_IDLE);
                (void) sd_event_source_set_description(r->flush, "rd-flush");
        }
        return sd_event_source_set_enabled(r->flush, SD_EVENT_ONESHOT);
}

int rd_get(rd *r, const char *resource, json_t **ret_value, const char **ret_reporter,
           const char **ret_reporter_runtime) {
        rd_resource *res;

        if (!r || !resource)
                return -EINVAL;
        res = resource_find(r, resource);
        if (!res || !res->known)
                return -ENOENT;
        if (ret_value)
                *ret_value = res->value;
        if (ret_reporter)
                *ret_reporter = res->reporter;
        if (ret_reporter_runtime)
                *ret_reporter_runtime = res->reporter_runtime;
        return 0;
}

int rd_publish(rd *r, const char *resource, const char *reporter, const char *runtime, json_t *value) {
        rd_resource *res;
        int k;

        if (!r || !resource || (!reporter != !runtime))
                return -EINVAL;
        k = resource_get(r, resource, &res);
        if (k < 0)
                return k;
        if (reporter) {
                k = set_str(&res->reporter, reporter);
                if (k >= 0)
                        k = set_str(&res->reporter_runtime, runtime);
                if (k < 0)
                        return k;
        }
        if (value) {
                json_decref(res->value);
                res->value = json_incref(value);
        }
        res->known = true;
        return mark_dirty(r, res);
}

typedef struct foreach_state {
        rd_resource_fn fn;
        void *userdata;
        int result;
        bool stop;
} foreach_state;

static void foreach_visit(const void *node, VISIT which, void *closure) {
        const rd_resource *res = *(rd_resource *const *) node;
        foreach_state *st = closure;
        int k;

        /* In-order: an inner node at its second visit, a leaf once. */
        if ((which != postorder && which != leaf) || st->stop || !res->known)
                return;
        k = st->fn(res->resource, res->reporter, res->reporter_runtime, res->value, res->n_subs, st->userdata);
        if (k != 0) {
                st->stop = true;
                st->result = k < 0 ? k : 0;
        }
}

int rd_foreach_resource(rd *r, rd_resource_fn fn, void *userdata) {
        foreach_state st = { .fn = fn, .userdata = userdata };

        if (!r || !fn)
                return -EINVAL;
        /* twalk cannot stop early; the callback is just not called after
         * a stop. */
        twalk_r(r->resources, foreach_visit, &st);
        return st.result;
}

int rd_remove(rd *r, const char *resource) {
        rd_resource *res;
        sqlite3_stmt *s;
        int k;

        if (!r || !resource)
                return -EINVAL;
        res = resource_find(r, resource);
        if (!res || !res->known)
                return -ENOENT;
        /* Pending writes first, so a queued INSERT cannot bring it back. */
        k = rd_flush(r);
        if (k < 0)
                return k;
        k = db_prepare(r->db, "DELETE FROM resources WHERE resource = ?1", &s);
        if (k >= 0)
                k = db_bind_text(r->db, s, 1, resource);
        if (k >= 0)
                k = db_step_done(r->db, s);
        if (k < 0)
                return k;
        res->known = false;
        json_decref(res->value);
        res->value = NULL;
        (void) set_str(&res->reporter, NULL);
        (void) set_str(&res->reporter_runtime, NULL);
        resource_gc(r, res);
        return 0;
}

/* --- subscriptions ------------------------------------------------------------- */

int rd_subscribe(rd *r, const char *resource, const char *subscriber, const char *runtime) {
        rd_resource *res;
        sqlite3_stmt *s;
        int k;

        if (!r || !resource || !subscriber || !runtime)
                return -EINVAL;
        k = resource_get(r, resource, &res);
        if (k < 0)
                return k;
        k = db_prepare(r->db,
                       "INSERT INTO subscriptions (resource, subscriber, runtime, created_usec) VALUES (?1, ?2, ?3, ?4) "
                       "ON CONFLICT (resource, subscriber) DO UPDATE SET runtime = ?3",
                       &s);
        if (k >= 0)
                k = db_bind_text(r->db, s, 1, resource);
        if (k >= 0)
                k = db_bind_text(r->db, s, 2, subscriber);
        if (k >= 0)
                k = db_bind_text(r->db, s, 3, runtime);
        if (k >= 0)
                k = db_bind_int64(r->db, s, 4, (int64_t) now(CLOCK_REALTIME));
        if (k >= 0)
                k = db_step_done(r->db, s);
        if (k < 0) {
                resource_gc(r, res);
                return k;
        }

        for (size_t i = 0; i < res->n_subs; i++)
                if (streq(res->subs[i].subscriber, subscriber)) {
                        k = set_str(&res->subs[i].runtime, runtime);
                        return k < 0 ? k : 0;
                }
        k = sub_add(res, subscriber, runtime);
        if (k < 0)
                return k;
        r->n_subscriptions++;
        return 1;
}

int rd_unsubscribe(rd *r, const char *resource, const char *subscriber) {
        rd_resource *res;
        sqlite3_stmt *s;
        size_t i;
        int k;

        if (!r || !resource || !subscriber)
                return -EINVAL;
        res = resource_find(r, resource);
        if (!res)
                return -ENOENT;
        for (i = 0; i < res->n_subs; i++)
                if (streq(res->subs[i].subscriber, subscriber))
                        break;
        if (i >= res->n_subs)
                return -ENOENT;
        k = db_prepare(r->db, "DELETE FROM subscriptions WHERE resource = ?1 AND subscriber = ?2", &s);
        if (k >= 0)
                k = db_bind_text(r->db, s, 1, resource);
        if (k >= 0)
                k = db_bind_text(r->db, s, 2, subscriber);
        if (k >= 0)
                k = db_step_done(r->db, s);
        if (k < 0)
                return k;
        free(res->subs[i].subscriber);
        free(res->subs[i].runtime);
        memmove(res->subs + i, res->subs + i + 1, (res->n_subs - i - 1) * sizeof(*res->subs));
        res->n_subs--;
        r->n_subscriptions--;
        resource_gc(r, res);
        return 0;
}

size_t rd_get_n_subscriptions(rd *r) {
        return r ? r->n_subscriptions : 0;
}

int rd_foreach_subscriber(rd *r, const char *resource, rd_subscriber_fn fn, void *userdata) {
        _cleanup_free_ char *name = NULL;
        const char *root;
        size_t len;

        if (!r || !resource || !fn)
                return -EINVAL;
        name = strdup(resource);
        if (!name)
                return -ENOMEM;
        /* The path starts after "scheme://authority/"; each shorter
         * whole-segment prefix below it is a subscription point too. */
        root = strstr(name, "://");
        root = root ? strchr(root + 3, '/') : NULL;
        len = strlen(name);
        for (;;) {
                rd_resource *res = resource_find(r, name);

                if (res)
                        for (size_t i = 0; i < res->n_subs; i++) {
                                int k = fn(res->subs[i].subscriber, res->subs[i].runtime, userdata);
                                if (k < 0)
                                        return k;
                        }
                if (!root)
                        break;
                while (len > 0 && name[len - 1] != '/')
                        len--;
                if (len == 0 || name + len - 1 <= root)
                        break;
                name[--len] = '\0';
        }
        return 0;
}
