/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalogue.h"
#include "descriptor.h"
#include "h2-common.h"
#include "http-range.h"
#include "id.h"
#include "log.h"
#include "sha256.h"
#include "sign.h"
#include "time-util.h"

#define UPLOAD_PREFIX ".upload-"
/* Download pacing: refill when fewer bytes than this are queued. */
#define DOWNLOAD_LOW_WATER (256U * 1024U)
#define DOWNLOAD_CHUNK (64U * 1024U)
/* Ranges this small are read and sent in one go. */
#define DOWNLOAD_INLINE_MAX (64U * 1024U)

struct catalogue {
        sd_event *event;
        db *db;
        char *dir;
        int dir_fd;
        sign_key **publishers;
        size_t n_publishers;
        uint64_t max_package_size;
};

/* --- setup ------------------------------------------------------------------- */

static void publishers_clear(catalogue *c) {
        for (size_t i = 0; i < c->n_publishers; i++)
                sign_key_free(c->publishers[i]);
        free(c->publishers);
        c->publishers = NULL;
        c->n_publishers = 0;
}

static void remove_stale_uploads(catalogue *c) {
        _cleanup_close_ int fd = fcntl(c->dir_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d;
        struct dirent *de;

        if (fd < 0)
                return;
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, UPLOAD_PREFIX, strlen(UPLOAD_PREFIX)) == 0) {
                        log_debug("Removing interrupted upload %s/%s", c->dir, de->d_name);
                        (void) unlinkat(c->dir_fd, de->d_name, 0);
                }
        closedir(d);
}

int catalogue_new(sd_event *e, db *d, const char *state_dir, catalogue **ret) {
        _cleanup_catalogue_ catalogue *c = NULL;

        if (!e || !d || !state_dir || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->dir_fd = -1;
        c->event = sd_event_ref(e);
        c->db = d;
        c->max_package_size = UINT64_C(256) * 1024 * 1024;
        if (asprintf(&c->dir, "%s/packages", state_dir) < 0) {
                c->dir = NULL;
                return -ENOMEM;
        }
        if (mkdir(c->dir, 0750) < 0 && errno != EEXIST)
                return negative_errno();
        c->dir_fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c->dir_fd < 0)
                return negative_errno();
        remove_stale_uploads(c);
        *ret = TAKE_PTR(c);
        return 0;
}

catalogue *catalogue_free(catalogue *c) {
        if (!c)
                return NULL;
        publishers_clear(c);
        safe_close(c->dir_fd);
        free(c->dir);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

int catalogue_set_trusted_publishers(catalogue *c, char *const *keys) {
        sign_key **l = NULL;
        size_t n = 0;
        int r;

        for (char *const *k = keys; k && *k; k++)
                n++;
        if (n > 0) {
                l = calloc(n, sizeof(sign_key *));
                if (!l)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = sign_key_from_public_base64url(keys[i], &l[i]);
                if (r < 0) {
                        for (size_t j = 0; j < i; j++)
                                sign_key_free(l[j]);
                        free(l);
                        return r;
                }
        }
        publishers_clear(c);
        c->publishers = l;
        c->n_publishers = n;
        return 0;
}

void catalogue_set_max_package_size(catalogue *c, uint64_t max) {
        c->max_package_size = max;
}

static bool digest_hex_is_valid(const char *s) {
        if (!s || strlen(s) != SHA256_HEX_SIZE - 1)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

/* Size of a stored package; with published set, only of one that a
 * published descriptor refers to. 0 found, -ENOENT not, other errors. */
static int package_lookup(catalogue *c, const char *sha256, bool published, uint64_t *ret_size) {
        sqlite3_stmt *s;
        int r;

        r = db_prepare(c->db,
                       published ? "SELECT size FROM packages p WHERE sha256 = ?1 AND "
                                   "EXISTS (SELECT 1 FROM descriptors d WHERE d.sha256 = p.sha256)"
                                 : "SELECT size FROM packages WHERE sha256 = ?1",
                       &s);
        if (r < 0)
                return r;
        r = db_bind_text(c->db, s, 1, sha256);
        if (r < 0)
                return r;
        r = db_step(c->db, s);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        if (ret_size)
                *ret_size = (uint64_t) sqlite3_column_int64(s, 0);
        db_reset(s);
        return 0;
}

/* --- upload: PUT /admin/catalogue/packages/<sha256> ---------------------------- */

typedef struct upload {
        catalogue *catalogue;
        int fd;
        char tmp_name[64];
        sha256_ctx *hash;
        uint64_t size;
} upload;

static void upload_free(void *p) {
        upload *u = p;

        if (!u)
                return;
        if (u->fd >= 0) {
                safe_close(u->fd);
                (void) unlinkat(u->catalogue->dir_fd, u->tmp_name, 0);
        }
        sha256_ctx_free(u->hash);
        free(u);
}

static void upload_freep(upload **u) {
        upload_free(*u);
}

static void upload_abort(upload *u) {
        u->fd = safe_close(u->fd);
        (void) unlinkat(u->catalogue->dir_fd, u->tmp_name, 0);
}

static int respond_package(route_request *rr, int status, const char *sha256, uint64_t size) {
        _cleanup_free_ char *location = NULL;
        json_t *body;
        int r;

        if (asprintf(&location, "/catalogue/packages/%s", sha256) < 0)
                return -ENOMEM;
        body = json_pack("{s:s, s:I}", "sha256", sha256, "size", (json_int_t) size);
        if (!body)
                return -ENOMEM;
        r = route_respond_json(rr, status, body, (const H2Header[]) { { "location", location } }, 1);
        json_decref(body);
        return r;
}

static int upload_begin(route_request *rr, void *userdata) {
        catalogue *c = userdata;
        const char *sha256 = route_request_get_param(rr, 0);
        const char *cl = h2_request_get_header(route_request_get_request(rr), "content-length");
        _cleanup_(upload_freep) upload *u = NULL;
        uint64_t size;
        int r;

        if (!digest_hex_is_valid(sha256))
                return route_respond_error(rr, 400, "path: expected the package's SHA-256 as 64 lowercase hex digits");
        if (cl) {
                char *end;
                unsigned long long v;

                errno = 0;
                v = strtoull(cl, &end, 10);
                if (errno == 0 && end != cl && *end == '\0' && v > c->max_package_size)
                        return route_respond_error(rr, 413, "package too large (limit %" PRIu64 " bytes)",
                                                   c->max_package_size);
        }

        r = package_lookup(c, sha256, false, &size);
        if (r >= 0)
                /* Content-addressed: what is stored is what would be stored. */
                return respond_package(rr, 200, sha256, size);
        if (r != -ENOENT)
                return r;

        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->catalogue = c;
        u->fd = -1;
        r = sha256_ctx_new(&u->hash);
        if (r < 0)
                return r;
        for (unsigned attempt = 0; u->fd < 0; attempt++) {
                uint64_t rnd;

                r = id_random_bytes(&rnd, sizeof(rnd));
                if (r < 0)
                        return r;
                snprintf(u->tmp_name, sizeof(u->tmp_name), UPLOAD_PREFIX "%016" PRIx64, rnd);
                u->fd = openat(c->dir_fd, u->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
                if (u->fd < 0 && (errno != EEXIST || attempt > 16))
                        return log_error_errno(errno, "Failed to create %s/%s: %m", c->dir, u->tmp_name);
        }
        route_request_set_state(rr, TAKE_PTR(u), upload_free);
        return 0;
}

static int upload_chunk(route_request *rr, const uint8_t *data, size_t size, void *userdata) {
        catalogue *c = userdata;
        upload *u = route_request_get_state(rr);
        int r;

        if (!u || u->fd < 0)
                return 0;
        if (size > c->max_package_size - MIN(u->size, c->max_package_size)) {
                upload_abort(u);
                return route_respond_error(rr, 413, "package too large (limit %" PRIu64 " bytes)",
                                           c->max_package_size);
        }
        u->size += size;
        r = sha256_ctx_update(u->hash, data, size);
        if (r < 0)
                return r;
        while (size > 0) {
                ssize_t n = write(u->fd, data, size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = negative_errno();
                        upload_abort(u);
                        if (r == -ENOSPC || r == -EDQUOT)
                                return route_respond_error(rr, 507, "no space left for the package");
                        return log_error_errno(r, "Failed to write an upload to %s: %m", c->dir);
                }
                data += n;
                size -= (size_t) n;
        }
        return 0;
}

typedef struct package_insert {
        const char *sha256;
        uint64_t size;
} package_insert;

static int package_insert_tx(db *d, void *userdata) {
        package_insert *p = userdata;
        sqlite3_stmt *s;
        int r;

        r = db_prepare(d, "INSERT OR IGNORE INTO packages (sha256, size, stored_usec) VALUES (?1, ?2, ?3)", &s);
        if (r < 0)
                return r;
        if ((r = db_bind_text(d, s, 1, p->sha256)) < 0 || (r = db_bind_int64(d, s, 2, (int64_t) p->size)) < 0 ||
            (r = db_bind_int64(d, s, 3, (int64_t) now(CLOCK_REALTIME))) < 0)
                return r;
        return db_step_done(d, s);
}

static int upload_end(route_request *rr, void *userdata) {
        catalogue *c = userdata;
        upload *u = route_request_get_state(rr);
        const char *sha256 = route_request_get_param(rr, 0);
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        int r;

        if (!u || u->fd < 0)
                return -EIO;
        r = sha256_ctx_final(u->hash, digest);
        if (r < 0)
                return r;
        if (!streq(sha256_to_hex(digest, hex), sha256)) {
                upload_abort(u);
                return route_respond_error(rr, 422, "the body's SHA-256 does not match the path");
        }

        /* On disk before it is in the database, and in the database before
         * we answer: a 201 survives SIGKILL and power loss. */
        if (fsync(u->fd) < 0) {
                r = negative_errno();
                upload_abort(u);
                return log_error_errno(r, "Failed to sync upload %s/%s: %m", c->dir, u->tmp_name);
        }
        if (renameat(c->dir_fd, u->tmp_name, c->dir_fd, sha256) < 0) {
                r = negative_errno();
                upload_abort(u);
                return log_error_errno(r, "Failed to store package %s/%s: %m", c->dir, sha256);
        }
        u->fd = safe_close(u->fd);
        if (fsync(c->dir_fd) < 0)
                return log_error_errno(errno, "Failed to sync %s: %m", c->dir);

        r = db_transaction(c->db, package_insert_tx, &(package_insert) { .sha256 = sha256, .size = u->size });
        if (r < 0)
                return log_error_errno(r, "Failed to record package %s: %s", sha256, db_last_error(c->db));
        log_info("Stored package %s (%" PRIu64 " bytes)", sha256, u->size);
        return respond_package(rr, 201, sha256, u->size);
}

/* --- publish: POST /admin/catalogue/descriptors ------------------------------- */

typedef struct publish {
        descriptor *descriptor;
        const char *json;
        int status; /* 201 new, 200 same as stored */
} publish;

static int publish_tx(db *d, void *userdata) {
        publish *p = userdata;
        const char *kind = descriptor_kind_to_string(descriptor_get_kind(p->descriptor));
        sqlite3_stmt *s;
        int64_t seq = 1;
        int r;

        r = db_prepare(d, "SELECT json FROM descriptors WHERE kind = ?1 AND name = ?2 AND version = ?3", &s);
        if (r < 0)
                return r;
        if ((r = db_bind_text(d, s, 1, kind)) < 0 ||
            (r = db_bind_text(d, s, 2, descriptor_get_name(p->descriptor))) < 0 ||
            (r = db_bind_text(d, s, 3, descriptor_get_version(p->descriptor))) < 0)
                return r;
        r = db_step(d, s);
        if (r < 0)
                return r;
        if (r > 0) {
                bool same = streq((const char *) sqlite3_column_text(s, 0), p->json);

                db_reset(s);
                if (!same)
                        return -EEXIST;
                p->status = 200;
                return 0;
        }

        r = db_prepare(d, "SELECT COALESCE(MAX(seq), 0) + 1 FROM descriptors", &s);
        if (r < 0)
                return r;
        r = db_step(d, s);
        if (r < 0)
                return r;
        if (r > 0) {
                seq = sqlite3_column_int64(s, 0);
                db_reset(s);
        }

        r = db_prepare(d,
                       "INSERT INTO descriptors (kind, name, version, sha256, json, published_usec, seq) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                       &s);
        if (r < 0)
                return r;
        if ((r = db_bind_text(d, s, 1, kind)) < 0 ||
            (r = db_bind_text(d, s, 2, descriptor_get_name(p->descriptor))) < 0 ||
            (r = db_bind_text(d, s, 3, descriptor_get_version(p->descriptor))) < 0 ||
            (r = db_bind_text(d, s, 4, descriptor_get_sha256(p->descriptor))) < 0 ||
            (r = db_bind_text(d, s, 5, p->json)) < 0 ||
            (r = db_bind_int64(d, s, 6, (int64_t) now(CLOCK_REALTIME))) < 0 || (r = db_bind_int64(d, s, 7, seq)) < 0)
                return r;
        r = db_step_done(d, s);
        if (r < 0)
                return r;
        p->status = 201;
        return 0;
}

static int publisher_find(catalogue *c, const char *publisher, const sign_key **ret) {
        _cleanup_sign_key_ sign_key *k = NULL;
        int r;

        r = sign_key_from_public_base64url(publisher, &k);
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->n_publishers; i++)
                if (sign_key_public_equal(c->publishers[i], k)) {
                        *ret = c->publishers[i];
                        return 0;
                }
        return -ENOKEY;
}

static int publish_handler(route_request *rr, void *userdata) {
        catalogue *c = userdata;
        _cleanup_descriptor_ descriptor *d = NULL;
        _cleanup_free_ char *reason = NULL, *json = NULL, *location = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE];
        const sign_key *key = NULL;
        const uint8_t *body;
        json_t *doc;
        publish p = {};
        size_t size;
        int r;

        body = route_request_get_body(rr, &size);
        r = descriptor_parse(body, size, &d, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return route_respond_error(rr, r == -EMSGSIZE ? 413 : 400, "%s", strna(reason));

        if (publisher_find(c, descriptor_get_publisher(d), &key) < 0)
                return route_respond_error(rr, 422, "field 'publisher': not a trusted publisher");
        r = package_lookup(c, descriptor_get_sha256(d), false, NULL);
        if (r == -ENOENT)
                return route_respond_error(rr, 422, "field 'sha256': no such package has been uploaded");
        if (r < 0)
                return r;
        descriptor_get_digest(d, digest);
        descriptor_get_signature(d, sig);
        if (verify_digest(key, digest, sig, sizeof(sig)) < 0)
                return route_respond_error(rr, 422, "field 'signature': does not verify with the publisher's key");

        /* What we serve names where the bytes are, if the publisher did not. */
        doc = json_deep_copy(descriptor_get_json(d));
        if (!doc)
                return -ENOMEM;
        if (!descriptor_get_source_package_url(d)) {
                _cleanup_free_ char *url = NULL;

                if (asprintf(&url, "/catalogue/packages/%s", descriptor_get_sha256(d)) < 0 ||
                    json_object_set_new(doc, "sourcePackageURL", json_string(url)) < 0) {
                        json_decref(doc);
                        return -ENOMEM;
                }
        }
        json = json_dumps(doc, JSON_COMPACT);
        if (!json) {
                json_decref(doc);
                return -ENOMEM;
        }

        p = (publish) { .descriptor = d, .json = json };
        r = db_transaction(c->db, publish_tx, &p);
        if (r == -EEXIST) {
                json_decref(doc);
                return route_respond_error(rr, 409, "%s %s version %s is already published with other content",
                                           descriptor_kind_to_string(descriptor_get_kind(d)), descriptor_get_name(d),
                                           descriptor_get_version(d));
        }
        if (r < 0) {
                json_decref(doc);
                return log_error_errno(r, "Failed to store a descriptor: %s", db_last_error(c->db));
        }
        if (p.status == 201)
                log_info("Published %s %s version %s (package %s)", descriptor_kind_to_string(descriptor_get_kind(d)),
                         descriptor_get_name(d), descriptor_get_version(d), descriptor_get_sha256(d));

        if (asprintf(&location, "/.well-known/%s/%s", descriptor_kind_to_string(descriptor_get_kind(d)),
                     descriptor_get_name(d)) < 0) {
                json_decref(doc);
                return -ENOMEM;
        }
        r = route_respond_json(rr, p.status, doc, (const H2Header[]) { { "location", location } }, 1);
        json_decref(doc);
        return r;
}

/* --- descriptors: GET /.well-known/<kind>/[<name>] ---------------------------- */

static int list_handler(route_request *rr, void *userdata) {
        catalogue *c = userdata;
        const char *kind = route_request_get_param(rr, 0);
        sqlite3_stmt *s;
        json_t *names;
        int r;

        if (descriptor_kind_from_string(kind) < 0)
                return route_respond_error(rr, 404, "unknown catalogue type (expected hyperty, protocolstub or runtime)");
        r = db_prepare(c->db, "SELECT DISTINCT name FROM descriptors WHERE kind = ?1 ORDER BY name", &s);
        if (r < 0)
                return r;
        r = db_bind_text(c->db, s, 1, kind);
        if (r < 0)
                return r;
        names = json_array();
        if (!names)
                return -ENOMEM;
        while ((r = db_step(c->db, s)) > 0)
                if (json_array_append_new(names, json_string((const char *) sqlite3_column_text(s, 0))) < 0) {
                        db_reset(s);
                        r = -ENOMEM;
                        break;
                }
        if (r >= 0)
                r = route_respond_json(rr, 200, names, NULL, 0);
        json_decref(names);
        return r;
}

static int descriptor_handler(route_request *rr, void *userdata) {
        static const char *const allowed[] = { "version", NULL };
        catalogue *c = userdata;
        const char *kind = route_request_get_param(rr, 0), *name = route_request_get_param(rr, 1);
        _cleanup_free_ char *version = NULL, *json = NULL;
        H2Request *req = route_request_get_request(rr);
        sqlite3_stmt *s;
        int r;

        if (descriptor_kind_from_string(kind) < 0)
                return route_respond_error(rr, 404, "unknown catalogue type (expected hyperty, protocolstub or runtime)");
        if (route_query_check_allowed(rr, allowed) < 0)
                return route_respond_error(rr, 400, "query: unknown parameter (allowed: version)");
        r = route_query_get(rr, "version", &version);
        if (r == -EINVAL)
                return route_respond_error(rr, 400, "query parameter 'version': malformed or given twice");
        if (r < 0 && r != -ENOENT)
                return r;
        if (!descriptor_name_is_valid(name))
                return route_respond_error(rr, 404, "no such %s", kind);

        if (version)
                r = db_prepare(c->db, "SELECT json FROM descriptors WHERE kind = ?1 AND name = ?2 AND version = ?3", &s);
        else
                r = db_prepare(c->db,
                               "SELECT json FROM descriptors WHERE kind = ?1 AND name = ?2 ORDER BY seq DESC LIMIT 1",
                               &s);
        if (r < 0)
                return r;
        if ((r = db_bind_text(c->db, s, 1, kind)) < 0 || (r = db_bind_text(c->db, s, 2, name)) < 0 ||
            (version && (r = db_bind_text(c->db, s, 3, version)) < 0))
                return r;
        r = db_step(c->db, s);
        if (r < 0)
                return r;
        if (r == 0)
                return route_respond_error(rr, 404, version ? "no such %s version" : "no such %s", kind);
        json = strdup((const char *) sqlite3_column_text(s, 0));
        db_reset(s);
        if (!json)
                return -ENOMEM;
        route_request_mark_answered(rr);
        return h2_request_respond(req, 200, (const H2Header[]) { { "content-type", "application/json" } }, 1, json,
                                  strlen(json));
}

int catalogue_get_descriptor(catalogue *c, const char *kind, const char *name, json_t **ret) {
        sqlite3_stmt *s;
        json_t *j;
        int r;

        if (!c || !kind || !name || !ret || descriptor_kind_from_string(kind) < 0 || !descriptor_name_is_valid(name))
                return -EINVAL;
        r = db_prepare(c->db, "SELECT json FROM descriptors WHERE kind = ?1 AND name = ?2 ORDER BY seq DESC LIMIT 1",
                       &s);
        if (r >= 0)
                r = db_bind_text(c->db, s, 1, kind);
        if (r >= 0)
                r = db_bind_text(c->db, s, 2, name);
        if (r >= 0)
                r = db_step(c->db, s);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        j = json_loads((const char *) sqlite3_column_text(s, 0), 0, NULL);
        db_reset(s);
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* --- download: GET /catalogue/packages/<sha256> -------------------------------- */

typedef struct download {
        H2Request *req;
        int fd;
        uint64_t offset, remaining;
        sd_event_source *post;
} download;

static void download_free(void *p) {
        download *dl = p;

        if (!dl)
                return;
        dl->post = sd_event_source_disable_unref(dl->post);
        safe_close(dl->fd);
        free(dl);
}

/* Tops up the stream's queue from the file. The server has no "drained"
 * callback, so this runs from a post source: after every loop iteration
 * in which anything happened (the socket took data, the peer opened its
 * flow-control window). An idle connection wakes nothing. */
static int download_fill(download *dl) {
        uint8_t buf[DOWNLOAD_CHUNK];
        int r;

        while (dl->remaining > 0 && h2_request_get_queued(dl->req) < DOWNLOAD_LOW_WATER) {
                size_t want = (size_t) MIN((uint64_t) sizeof(buf), dl->remaining);
                ssize_t n = pread(dl->fd, buf, want, (off_t) dl->offset);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        /* The file shrank under us: cut the stream rather than send short. */
                        log_error_errno(n < 0 ? errno : EIO, "Failed to read a package: %m");
                        (void) h2_request_reset(dl->req, NGHTTP2_INTERNAL_ERROR);
                        return -EIO;
                }
                r = h2_request_write(dl->req, buf, (size_t) n);
                if (r == -ENOBUFS)
                        return 0;
                if (r < 0)
                        return r;
                dl->offset += (uint64_t) n;
                dl->remaining -= (uint64_t) n;
        }
        if (dl->remaining == 0) {
                (void) sd_event_source_set_enabled(dl->post, SD_EVENT_OFF);
                return h2_request_end(dl->req);
        }
        return 0;
}

static int on_download_post(sd_event_source *s, void *userdata) {
        download *dl = userdata;

        if (download_fill(dl) < 0)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static int package_handler(route_request *rr, void *userdata) {
        catalogue *c = userdata;
        H2Request *req = route_request_get_request(rr);
        const char *sha256 = route_request_get_param(rr, 0);
        char etag[SHA256_HEX_SIZE + 2], length[21], content_range[80];
        _cleanup_close_ int fd = -1;
        http_range range = {};
        http_range_result rres = HTTP_RANGE_NONE;
        uint64_t size, first, count;
        struct stat st;
        int status, r;

        if (!digest_hex_is_valid(sha256))
                return route_respond_error(rr, 404, "no such package");
        r = package_lookup(c, sha256, true, &size);
        if (r == -ENOENT)
                return route_respond_error(rr, 404, "no such package");
        if (r < 0)
                return r;
        fd = openat(c->dir_fd, sha256, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open package %s/%s: %m", c->dir, sha256);
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if ((uint64_t) st.st_size != size)
                return log_error_errno(EBADMSG, "Package %s/%s has %jd bytes, expected %" PRIu64, c->dir, sha256,
                                       (intmax_t) st.st_size, size);

        snprintf(etag, sizeof(etag), "\"%s\"", sha256);
        if (http_if_none_match(h2_request_get_header(req, "if-none-match"), etag))
                return route_respond_empty(rr, 304, (const H2Header[]) { { "etag", etag } }, 1);

        if (http_if_range_match(h2_request_get_header(req, "if-range"), etag))
                rres = http_range_parse(h2_request_get_header(req, "range"), size, &range);
        if (rres == HTTP_RANGE_UNSATISFIABLE) {
                _cleanup_free_ char *body = NULL;

                snprintf(content_range, sizeof(content_range), "bytes */%" PRIu64, size);
                r = h2_json_error_body(416, "range not satisfiable", &body);
                if (r < 0)
                        return r;
                route_request_mark_answered(rr);
                return h2_request_respond(req, 416,
                                          (const H2Header[]) { { "content-type", "application/json" },
                                                               { "content-range", content_range },
                                                               { "etag", etag } },
                                          3, body, (size_t) r);
        }
        if (rres == HTTP_RANGE_SATISFIABLE) {
                status = 206;
                first = range.first;
                count = range.last - range.first + 1;
                snprintf(content_range, sizeof(content_range), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, range.first,
                         range.last, size);
        } else {
                status = 200;
                first = 0;
                count = size;
        }
        h2_format_u64(count, length);

        H2Header headers[] = {
                { "content-type", "application/octet-stream" },
                { "content-length", length },
                { "etag", etag },
                { "accept-ranges", "bytes" },
                /* Named by its digest: these bytes never change. */
                { "cache-control", "public, max-age=31536000, immutable" },
                { "content-range", content_range },
        };
        size_t n_headers = ELEMENTSOF(headers) - (status == 206 ? 0 : 1);

        route_request_mark_answered(rr);
        /* HEAD: the same headers, Content-Length included, and no body. */
        if (streq(h2_request_get_method(req), "HEAD"))
                return h2_request_respond(req, status, headers, n_headers, NULL, 0);
        if (count <= DOWNLOAD_INLINE_MAX) {
                uint8_t buf[DOWNLOAD_INLINE_MAX];
                ssize_t n = count > 0 ? pread(fd, buf, (size_t) count, (off_t) first) : 0;

                if (n < 0 || (uint64_t) n != count)
                        return log_error_errno(n < 0 ? errno : EIO, "Failed to read package %s: %m", sha256);
                return h2_request_respond(req, status, headers, n_headers, buf, (size_t) count);
        }

        download *dl = calloc(1, sizeof(*dl));
        if (!dl)
                return -ENOMEM;
        dl->req = req;
        dl->offset = first;
        dl->remaining = count;
        dl->fd = TAKE_FD(fd);
        r = sd_event_add_post(c->event, &dl->post, on_download_post, dl);
        if (r < 0) {
                download_free(dl);
                return r;
        }
        (void) sd_event_source_set_description(dl->post, "catalogue-download");
        route_request_set_state(rr, dl, download_free);

        r = h2_request_start_response(req, status, headers, n_headers);
        if (r < 0)
                return r;
        return download_fill(dl);
}

static const route routes[] = {
        { .method = "GET", .pattern = "/.well-known/*/", .handler = list_handler },
        { .method = "GET", .pattern = "/.well-known/*", .handler = list_handler },
        { .method = "GET", .pattern = "/.well-known/*/*", .handler = descriptor_handler },
        { .method = "GET", .pattern = "/catalogue/packages/*", .handler = package_handler },
        { .method = "HEAD", .pattern = "/catalogue/packages/*", .handler = package_handler },
        { .method = "PUT", .pattern = "/admin/catalogue/packages/*", .flags = ROUTE_ADMIN,
          .begin = upload_begin, .chunk = upload_chunk, .handler = upload_end },
        { .method = "POST", .pattern = "/admin/catalogue/descriptors", .flags = ROUTE_ADMIN,
          .max_body = DESCRIPTOR_MAX_SIZE, .handler = publish_handler },
};

int catalogue_add_routes(catalogue *c, router *r) {
        return router_add(r, routes, ELEMENTSOF(routes), c);
}
