/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl.h"
#include "component-store.h"
#include "config.h"
#include "descriptor.h"
#include "download.h"
#include "fileio.h"
#include "launcher.h"
#include "log.h"
#include "message.h"
#include "package.h"
#include "sha256.h"
#include "sign.h"
#include "swmgr.h"
#include "swmgr-journal.h"

#define ADMIN_PRINCIPAL_DEFAULT "local:uid=0"

#define IN_SET_SWM(x, ...)                                                                \
        ({                                                                                \
                const swm_state _l_[] = { __VA_ARGS__ };                                   \
                swm_state _x_ = (x);                                                      \
                bool _f_ = false;                                                         \
                for (size_t _i_ = 0; _i_ < ELEMENTSOF(_l_); _i_++)                         \
                        if (_l_[_i_] == _x_)                                              \
                                _f_ = true;                                               \
                _f_;                                                                      \
        })

typedef struct publisher {
        char *name;
        char *key_b64;          /* canonical base64url: what descriptors carry */
        sign_key *key;
} publisher;

typedef struct component {
        swmgr *manager;
        component_record rec;
        swm_state state;
        descriptor *desc;
        acl *acl;
        download *dl;
        launch_instance *instance;      /* while it runs, restarts or stops */
} component;

struct swmgr {
        sd_event *event;
        gates *gates;
        gate_subscription *gate_sub;
        component_store *store;

        char *state_dir;
        char *dir_downloads, *dir_staging, *dir_installed, *dir_trash;
        char *catalogue_url;
        char *ca_file;
        char *runtime_version;
        char *arch;
        char *dm_principal;
        char *admin_principal;
        download_options dl_options;
        launcher *launcher;             /* borrowed, or own_launcher */
        launcher *own_launcher;

        publisher *publishers;
        size_t n_publishers;

        component **components;
        size_t n_components;

        swmgr_event_handler_t handler;
        void *handler_userdata;
        bool started;
};

static const char *const state_names[_SWM_STATE_MAX] = {
        [SWM_INITIAL] = "INITIAL",
        [SWM_DOWNLOAD_STARTED] = "DOWNLOAD_STARTED",
        [SWM_DOWNLOADED] = "DOWNLOADED",
        [SWM_DELIVERED] = "DELIVERED",
        [SWM_INSTALLING] = "INSTALLING",
        [SWM_INSTALLED] = "INSTALLED",
        [SWM_UNINSTALLING] = "UNINSTALLING",
};

const char *swm_state_to_string(swm_state s) {
        if (s < 0 || s >= _SWM_STATE_MAX)
                return NULL;
        return state_names[s];
}

swm_state swm_state_from_string(const char *s) {
        for (swm_state i = 0; s && i < _SWM_STATE_MAX; i++)
                if (streq(state_names[i], s))
                        return i;
        return _SWM_STATE_INVALID;
}

const char *swm_result_to_string(int result) {
        switch (result) {
        case SWM_RESULT_INITIAL: return "initial";
        case SWM_RESULT_DOWNLOADING: return "downloading";
        case SWM_RESULT_INSTALLED: return "successfully installed";
        case SWM_RESULT_DOWNLOADED: return "successfully downloaded and verified";
        case SWM_RESULT_STORAGE_FULL: return "not enough storage";
        case SWM_RESULT_OUT_OF_MEMORY: return "out of memory";
        case SWM_RESULT_CONNECTION_LOST: return "connection lost";
        case SWM_RESULT_INTEGRITY: return "integrity check failure";
        case SWM_RESULT_UNSUPPORTED_PACKAGE: return "unsupported package type";
        case SWM_RESULT_INVALID_URI: return "invalid URI";
        case SWM_RESULT_UPDATE_ERROR: return "update error";
        case SWM_RESULT_INSTALL_FAILURE: return "installation failure";
        case SWM_RESULT_UNINSTALL_FAILURE: return "uninstallation failure";
        default: return NULL;
        }
}

int swmgr_error_to_status(int error) {
        switch (-error) {
        case EINVAL:
        case EBADMSG:
        case EMSGSIZE:
        case E2BIG:
                return 400;
        case EACCES:
        case EPERM:
                return 403;
        case ENOENT:
                return 404;
        case EBUSY:
        case EEXIST:
                return 409;
        default:
                return 500;
        }
}

static int set_error(char **ret_error, int error, const char *fmt, ...) _printf_(3, 4);
static int set_error(char **ret_error, int error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

/* --- files ------------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        if (remove(p) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int rm_rf(const char *path) {
        struct stat st;
        int r;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (!S_ISDIR(st.st_mode))
                return unlink(path) < 0 && errno != ENOENT ? negative_errno() : 0;
        r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return r < 0 ? negative_errno() : r;
}

static int fsync_dir(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

static char *path_join(const char *a, const char *b, const char *suffix) {
        char *p;

        if (asprintf(&p, "%s/%s%s", a, b, suffix ?: "") < 0)
                return NULL;
        return p;
}

static char *component_path(component *c, const char *dir, const char *suffix) {
        return path_join(dir, c->rec.name, suffix);
}

static bool path_exists(const char *p) {
        struct stat st;
        return p && lstat(p, &st) >= 0;
}

static void closedirp_swm(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

/* --- components in memory --------------------------------------------------------- */

static component *component_free(component *c) {
        if (!c)
                return NULL;
        download_free(c->dl);
        launch_instance_free(c->instance);
        component_record_done(&c->rec);
        descriptor_free(c->desc);
        acl_free(c->acl);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(component *, component_free);

static component *find_component(swmgr *m, const char *name) {
        for (size_t i = 0; name && i < m->n_components; i++)
                if (streq(m->components[i]->rec.name, name))
                        return m->components[i];
        return NULL;
}

static int add_component(swmgr *m, component *c) {
        component **a = reallocarray(m->components, m->n_components + 1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        m->components = a;
        m->components[m->n_components++] = c;
        return 0;
}

static void remove_component(swmgr *m, component *c) {
        for (size_t i = 0; i < m->n_components; i++)
                if (m->components[i] == c) {
                        memmove(&m->components[i], &m->components[i + 1],
                                (m->n_components - i - 1) * sizeof(component *));
                        m->n_components--;
                        break;
                }
        component_free(c);
}

/* Loads descriptor and ACL of a persisted record. */
static int component_from_record(swmgr *m, component_record *rec, component **ret) {
        _cleanup_(component_freep) component *c = NULL;
        _cleanup_free_ char *reason = NULL;
        json_error_t err;
        json_t *j;
        const char *why = NULL;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->manager = m;
        c->rec = *rec;
        *rec = (component_record) {};
        c->state = swm_state_from_string(c->rec.state);
        if (c->state < 0)
                return -EBADMSG;
        r = descriptor_parse(c->rec.descriptor, strlen(c->rec.descriptor), &c->desc, &reason);
        if (r < 0)
                return r;
        j = json_loads(c->rec.acl, 0, &err);
        if (!j)
                return -EBADMSG;
        r = acl_from_json(j, &c->acl, &why);
        json_decref(j);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static int component_set_acl_record(component *c) {
        _cleanup_free_ char *s = NULL;
        json_t *j;
        int r;

        r = acl_to_json(c->acl, &j);
        if (r < 0)
                return r;
        s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!s)
                return -ENOMEM;
        free(c->rec.acl);
        c->rec.acl = TAKE_PTR(s);
        return 0;
}

static void emit(swmgr *m, component *c, swm_state prev, const char *principal, bool removed) {
        swmgr_event ev = {
                .name = c->rec.name,
                .version = c->rec.version,
                .state = c->state,
                .prev_state = prev,
                .result = c->rec.result,
                .reason = c->rec.reason,
                .active = c->rec.active,
                .removed = removed,
                .principal = principal,
        };

        if (m->handler)
                m->handler(&ev, m->handler_userdata);
}

/* Commits the new state, then journals and reports it. On failure to
 * commit, the in-memory record is restored and the caller decides. */
static int component_transition(component *c, swm_state state, int result, bool active, const char *principal,
                                const char *fmt, ...) _printf_(6, 7);
static int component_transition(component *c, swm_state state, int result, bool active, const char *principal,
                                const char *fmt, ...) {
        swmgr *m = c->manager;
        component_record saved = {};
        swm_state prev = c->state;
        char *reason = NULL;
        va_list ap;
        int r;

        if (fmt) {
                va_start(ap, fmt);
                r = vasprintf(&reason, fmt, ap);
                va_end(ap);
                if (r < 0)
                        return -ENOMEM;
        }
        r = component_record_copy(&saved, &c->rec);
        if (r < 0) {
                free(reason);
                return r;
        }
        free(c->rec.state);
        c->rec.state = strdup(swm_state_to_string(state));
        free(c->rec.reason);
        c->rec.reason = reason;
        c->rec.result = result;
        c->rec.active = active;
        if (c->dl)
                c->rec.bytes = download_get_bytes(c->dl);
        r = c->rec.state ? component_store_put(m->store, &c->rec) : -ENOMEM;
        if (r < 0) {
                component_record_done(&c->rec);
                c->rec = saved;
                return log_error_errno(r, "Component %s: failed to persist state %s: %m", c->rec.name,
                                       swm_state_to_string(state));
        }
        component_record_done(&saved);
        c->state = state;
        swmgr_journal_transition(c->rec.name, c->rec.version, swm_state_to_string(prev),
                                 swm_state_to_string(state), result, swm_result_to_string(result), c->rec.reason,
                                 active, principal);
        emit(m, c, prev, principal, false);
        return 0;
}

/* --- publishers -------------------------------------------------------------------- */

int swmgr_add_trusted_publisher(swmgr *m, const char *name, const char *key) {
        _cleanup_sign_key_ sign_key *k = NULL;
        _cleanup_free_ char *b64 = NULL, *n = NULL;
        publisher *a;
        int r;

        if (!m || !name || !key)
                return -EINVAL;
        if (strstr(key, "-----BEGIN"))
                r = sign_key_from_public_pem(key, strlen(key), &k);
        else
                r = sign_key_from_public_base64url(key, &k);
        if (r < 0)
                return r;
        r = sign_key_get_public_base64url(k, &b64);
        if (r < 0)
                return r;
        n = strdup(name);
        if (!n)
                return -ENOMEM;
        a = reallocarray(m->publishers, m->n_publishers + 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        m->publishers = a;
        m->publishers[m->n_publishers++] = (publisher) {
                .name = TAKE_PTR(n),
                .key_b64 = TAKE_PTR(b64),
                .key = TAKE_PTR(k),
        };
        return 0;
}

int swmgr_load_trusted_publishers(swmgr *m, const char *dir, char **ret_error) {
        _cleanup_(closedirp_swm) DIR *d = NULL;
        struct dirent *de;
        int n = 0;

        if (!m || !dir)
                return -EINVAL;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : set_error(ret_error, negative_errno(), "%s: %m", dir);
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *text = NULL, *name = NULL;
                const char *dot = strrchr(de->d_name, '.');
                size_t size;
                int r;

                if (de->d_name[0] == '.' || !dot || (!streq(dot, ".pem") && !streq(dot, ".pub")))
                        continue;
                path = path_join(dir, de->d_name, NULL);
                name = strndup(de->d_name, dot - de->d_name);
                if (!path || !name)
                        return -ENOMEM;
                r = read_full_file(path, 64 * 1024, &text, &size);
                if (r >= 0) {
                        /* A .pub file is one line; the newline is not part of the key. */
                        if (streq(dot, ".pub"))
                                text[strcspn(text, "\r\n")] = '\0';
                        r = swmgr_add_trusted_publisher(m, name, text);
                }
                if (r < 0)
                        return set_error(ret_error, r, "%s: %s", path,
                                         r == -EBADMSG || r == -EINVAL ? "not an Ed25519 public key" : strerror(-r));
                n++;
        }
        return n;
}

static const publisher *find_publisher(swmgr *m, const char *b64) {
        for (size_t i = 0; b64 && i < m->n_publishers; i++)
                if (streq(m->publishers[i].key_b64, b64))
                        return &m->publishers[i];
        return NULL;
}

/* --- setup ----------------------------------------------------------------------------- */

static int dup_opt(char **dst, const char *src, const char *def) {
        const char *v = src ?: def;

        *dst = NULL;
        if (!v)
                return 0;
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

int swmgr_new(sd_event *e, gates *g, const swmgr_options *o, swmgr **ret) {
        _cleanup_swmgr_ swmgr *m = NULL;
        _cleanup_free_ char *db_path = NULL, *sw = NULL, *reason = NULL;
        struct utsname u;
        int r;

        if (!e || !o || !o->state_dir || o->state_dir[0] != '/' || !ret)
                return -EINVAL;
        if (o->dm_principal && !acl_principal_is_valid(o->dm_principal))
                return -EINVAL;
        if (o->admin_principal && !acl_principal_is_valid(o->admin_principal))
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        m->gates = g;
        if (uname(&u) < 0)
                return negative_errno();
        if (dup_opt(&m->state_dir, o->state_dir, NULL) < 0 ||
            dup_opt(&m->catalogue_url, o->catalogue_url, NULL) < 0 ||
            dup_opt(&m->ca_file, o->ca_file, NULL) < 0 ||
            dup_opt(&m->runtime_version, o->runtime_version, RETHINK_VERSION) < 0 ||
            dup_opt(&m->arch, o->arch, u.machine) < 0 ||
            dup_opt(&m->dm_principal, o->dm_principal, NULL) < 0 ||
            dup_opt(&m->admin_principal, o->admin_principal, ADMIN_PRINCIPAL_DEFAULT) < 0)
                return -ENOMEM;
        m->launcher = o->launcher;
        if (!m->launcher) {
                r = launcher_new(e, &(launcher_options) { .mode = LAUNCHER_FORK }, &m->own_launcher);
                if (r < 0)
                        return r;
                m->launcher = m->own_launcher;
        }
        m->dl_options = (download_options) {
                .retry_initial = o->retry_initial,
                .retry_max = o->retry_max,
                .retry_attempts = o->retry_attempts,
                .stall_timeout = o->stall_timeout,
                .ca_file = m->ca_file,
        };

        sw = path_join(o->state_dir, "software", NULL);
        if (!sw)
                return -ENOMEM;
        m->dir_downloads = path_join(sw, "downloads", NULL);
        m->dir_staging = path_join(sw, "staging", NULL);
        m->dir_installed = path_join(sw, "installed", NULL);
        m->dir_trash = path_join(sw, "trash", NULL);
        if (!m->dir_downloads || !m->dir_staging || !m->dir_installed || !m->dir_trash)
                return -ENOMEM;
        for (size_t i = 0; i < 4; i++) {
                const char *d = (const char *[]) { m->dir_downloads, m->dir_staging, m->dir_installed,
                                                   m->dir_trash }[i];

                r = mkdir_p(d, 0750);
                if (r < 0)
                        return log_debug_errno(r, "swmgr: cannot create %s: %m", d);
        }

        db_path = path_join(o->state_dir, "components.db", NULL);
        if (!db_path)
                return -ENOMEM;
        r = component_store_open(db_path, &m->store, &reason);
        if (r < 0)
                return log_debug_errno(r, "swmgr: cannot open %s: %s", db_path, strna(reason));

        *ret = TAKE_PTR(m);
        return 0;
}

swmgr *swmgr_free(swmgr *m) {
        if (!m)
                return NULL;
        m->gate_sub = gate_subscription_free(m->gate_sub);
        for (size_t i = 0; i < m->n_components; i++) {
                component *c = m->components[i];

                if (c->dl)
                        download_stop(c->dl);
                if (c->instance)
                        (void) launcher_stop(c->instance);
                component_free(c);
        }
        free(m->components);
        for (size_t i = 0; i < m->n_publishers; i++) {
                free(m->publishers[i].name);
                free(m->publishers[i].key_b64);
                sign_key_free(m->publishers[i].key);
        }
        free(m->publishers);
        component_store_free(m->store);
        launcher_free(m->own_launcher);
        sd_event_unref(m->event);
        free(m->state_dir);
        free(m->dir_downloads);
        free(m->dir_staging);
        free(m->dir_installed);
        free(m->dir_trash);
        free(m->catalogue_url);
        free(m->ca_file);
        free(m->runtime_version);
        free(m->arch);
        free(m->dm_principal);
        free(m->admin_principal);
        free(m);
        return NULL;
}

void swmgr_set_event_handler(swmgr *m, swmgr_event_handler_t handler, void *userdata) {
        m->handler = handler;
        m->handler_userdata = userdata;
}

int swmgr_set_dm_principal(swmgr *m, const char *principal) {
        char *p = NULL;

        if (!m || (principal && !acl_principal_is_valid(principal)))
                return -EINVAL;
        if (principal && !(p = strdup(principal)))
                return -ENOMEM;
        free(m->dm_principal);
        m->dm_principal = p;
        return 0;
}

int swmgr_set_catalogue_url(swmgr *m, const char *url) {
        char *u = NULL;

        if (!m)
                return -EINVAL;
        if (url && !(u = strdup(url)))
                return -ENOMEM;
        free(m->catalogue_url);
        m->catalogue_url = u;
        return 0;
}

const char *swmgr_get_state_dir(swmgr *m) {
        return m ? m->state_dir : NULL;
}

int swmgr_get_state(swmgr *m, const char *name, swm_state *ret_state, int *ret_result) {
        component *c = m ? find_component(m, name) : NULL;

        if (!c)
                return -ENOENT;
        if (ret_state)
                *ret_state = c->state;
        if (ret_result)
                *ret_result = c->rec.result;
        return 0;
}

pid_t swmgr_get_pid(swmgr *m, const char *name) {
        component *c = m ? find_component(m, name) : NULL;

        return c ? launch_instance_get_pid(c->instance) : 0;
}

/* --- JSON ------------------------------------------------------------------------------ */

static json_t *component_json(component *c) {
        char created[FORMAT_RFC3339_MAX], updated[FORMAT_RFC3339_MAX];
        json_t *acl_json = NULL, *o;

        bool systemd = launcher_get_mode(c->manager->launcher) == LAUNCHER_SYSTEMD;

        if (acl_to_json(c->acl, &acl_json) < 0)
                return NULL;
        o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s?, s:b, s:I, s:s?, s:s?, s:i, s:s, s:I, s:I, s:s, s:o, "
                      "s:s, s:s}",
                      "name", c->rec.name,
                      "version", c->rec.version,
                      "type", descriptor_kind_to_string(descriptor_get_kind(c->desc)),
                      "state", swm_state_to_string(c->state),
                      "result", c->rec.result,
                      "resultText", strna(swm_result_to_string(c->rec.result)),
                      "reason", c->rec.reason,
                      "active", c->rec.active,
                      "pid", (json_int_t) launch_instance_get_pid(c->instance),
                      "process", c->instance ? launch_instance_get_state(c->instance) : NULL,
                      "unit", systemd && c->instance ? launch_instance_get_unit(c->instance) : NULL,
                      "restarts", (int) launch_instance_get_restarts(c->instance),
                      "launcher", launcher_mode_to_string(launcher_get_mode(c->manager->launcher)),
                      "bytes", (json_int_t) (c->dl ? download_get_bytes(c->dl) : c->rec.bytes),
                      "total", (json_int_t) (c->dl && download_get_total(c->dl) ? download_get_total(c->dl)
                                                                                  : c->rec.total),
                      "publisher", descriptor_get_publisher(c->desc),
                      "acl", acl_json,
                      "createdAt", format_rfc3339(created, sizeof(created), c->rec.created_usec) ?: "",
                      "updatedAt", format_rfc3339(updated, sizeof(updated), c->rec.updated_usec) ?: "");
        return o;
}

static int reply_component(component *c, json_t **ret_value) {
        json_t *o;

        if (!ret_value)
                return 0;
        o = component_json(c);
        if (!o)
                return -ENOMEM;
        *ret_value = o;
        return 0;
}

/* --- checks ------------------------------------------------------------------------------ */

static bool version_major_equal(const char *a, const char *b) {
        return strtoul(a, NULL, 10) == strtoul(b, NULL, 10) && strspn(a, "0123456789") > 0 &&
               strspn(b, "0123456789") > 0;
}

/* Constraints that do not depend on the bytes: on failure the result code
 * and *ret_reason. */
static int check_constraints(component *c, char **ret_reason) {
        swmgr *m = c->manager;
        json_t *cons = json_object_get(descriptor_get_json(c->desc), "constraints");
        json_t *v, *arch;
        size_t i;

        v = json_object_get(cons, "runtimeVersion");
        if (json_is_string(v)) {
                const char *want = json_string_value(v);

                /* Same major version (an incompatible runtime API), and at least as new. */
                if (!version_major_equal(want, m->runtime_version) || strverscmp(m->runtime_version, want) < 0)
                        return set_error(ret_reason, SWM_RESULT_UPDATE_ERROR,
                                         "incompatible runtime version: needs %s, device runs %s", want,
                                         m->runtime_version);
        }
        arch = json_object_get(cons, "arch");
        if (json_is_array(arch) && json_array_size(arch) > 0) {
                bool found = false;

                json_array_foreach(arch, i, v)
                        if (json_is_string(v) && streq(json_string_value(v), m->arch))
                                found = true;
                if (!found)
                        return set_error(ret_reason, SWM_RESULT_UPDATE_ERROR,
                                         "incompatible hardware: package is not built for %s", m->arch);
        }
        v = json_object_get(cons, "diskBytes");
        if (json_is_integer(v)) {
                struct statvfs sv;
                uint64_t free_bytes;

                if (statvfs(m->state_dir, &sv) < 0)
                        return set_error(ret_reason, SWM_RESULT_STORAGE_FULL, "cannot read free space: %m");
                free_bytes = (uint64_t) sv.f_bavail * sv.f_frsize;
                if ((uint64_t) json_integer_value(v) > free_bytes)
                        return set_error(ret_reason, SWM_RESULT_STORAGE_FULL,
                                         "not enough storage: needs %" PRIu64 " bytes, %" PRIu64 " free",
                                         (uint64_t) json_integer_value(v), free_bytes);
        }
        if (!find_publisher(m, descriptor_get_publisher(c->desc)))
                return set_error(ret_reason, SWM_RESULT_INTEGRITY, "publisher is not trusted on this device");
        return 0;
}

static int package_url(component *c, char **ret) {
        swmgr *m = c->manager;
        const char *src = descriptor_get_source_package_url(c->desc);
        _cleanup_free_ char *url = NULL, *host = NULL, *path = NULL;
        _cleanup_free_ char *def = NULL;
        uint16_t port;
        bool tls;
        int r;

        if (!src) {
                if (asprintf(&def, "/catalogue/packages/%s", descriptor_get_sha256(c->desc)) < 0)
                        return -ENOMEM;
                src = def;
        }
        if (src[0] == '/') {
                size_t n;

                if (!m->catalogue_url)
                        return -EADDRNOTAVAIL;
                n = strlen(m->catalogue_url);
                while (n > 0 && m->catalogue_url[n - 1] == '/')
                        n--;
                if (asprintf(&url, "%.*s%s", (int) n, m->catalogue_url, src) < 0)
                        return -ENOMEM;
        } else {
                url = strdup(src);
                if (!url)
                        return -ENOMEM;
        }
        r = download_parse_url(url, &tls, &host, &port, &path);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(url);
        return 0;
}

/* Digest, trusted publisher, signature, and that it is something we can
 * run: on failure the result code and *ret_reason. */
static int verify_package(component *c, const char *path, char **ret_reason) {
        uint8_t digest[SHA256_DIGEST_SIZE], want[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE];
        const publisher *p = find_publisher(c->manager, descriptor_get_publisher(c->desc));
        _cleanup_close_ int fd = -1;
        char head[4] = {};
        int64_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return set_error(ret_reason, SWM_RESULT_INTEGRITY, "package file missing: %m");
        n = sha256_fd(fd, digest);
        if (n < 0)
                return set_error(ret_reason, SWM_RESULT_INTEGRITY, "cannot hash the package: %s", strerror((int) -n));
        descriptor_get_digest(c->desc, want);
        if (memcmp(digest, want, sizeof(digest)) != 0)
                return set_error(ret_reason, SWM_RESULT_INTEGRITY, "package does not match its sha256");
        if (!p)
                return set_error(ret_reason, SWM_RESULT_INTEGRITY, "publisher is not trusted on this device");
        descriptor_get_signature(c->desc, sig);
        if (verify_digest(p->key, digest, sig, sizeof(sig)) < 0)
                return set_error(ret_reason, SWM_RESULT_INTEGRITY, "signature does not verify with the key of publisher %s",
                                 p->name);
        n = pread(fd, head, sizeof(head), 0);
        if (package_type_detect(head, n > 0 ? (size_t) n : 0) == PACKAGE_UNSUPPORTED)
                return set_error(ret_reason, SWM_RESULT_UNSUPPORTED_PACKAGE,
                                 "package is not an executable (ELF or #! script)");
        return 0;
}

/* --- failure and cleanup -------------------------------------------------------------------- */

static void remove_download_files(component *c) {
        _cleanup_free_ char *part = component_path(c, c->manager->dir_downloads, ".part");
        _cleanup_free_ char *pkg = component_path(c, c->manager->dir_downloads, ".pkg");
        _cleanup_free_ char *staging = component_path(c, c->manager->dir_staging, NULL);

        if (part)
                (void) unlink(part);
        if (pkg)
                (void) unlink(pkg);
        if (staging)
                (void) rm_rf(staging);
        (void) fsync_dir(c->manager->dir_downloads);
}

/* Back to INITIAL with an error result; files go first, so a full disk
 * has room again for the commit. */
static int component_fail(component *c, int result, const char *principal, const char *reason) {
        c->dl = download_free(c->dl);
        remove_download_files(c);
        c->rec.bytes = 0;
        c->rec.total = 0;
        free(c->rec.etag);
        c->rec.etag = NULL;
        return component_transition(c, SWM_INITIAL, result, false, principal, "%s", reason);
}

static int result_from_download_error(int error) {
        switch (-error) {
        case ENOSPC:
        case EDQUOT:
        case EFBIG:
                return SWM_RESULT_STORAGE_FULL;
        case ENOMEM:
                return SWM_RESULT_OUT_OF_MEMORY;
        case ENOENT:
        case EPROTO:
        case EINVAL:
                return SWM_RESULT_INVALID_URI;
        default:
                return SWM_RESULT_CONNECTION_LOST;
        }
}

/* --- download --------------------------------------------------------------------------------- */

static void component_downloaded(component *c, const char *path);

static void on_dl_etag(download *d, const char *etag, void *userdata) {
        component *c = userdata;
        char *e = NULL;

        if (streq_ptr(etag, c->rec.etag))
                return;
        if (etag && !(e = strdup(etag)))
                return;
        free(c->rec.etag);
        c->rec.etag = e;
        c->rec.bytes = download_get_bytes(d);
        if (component_store_put(c->manager->store, &c->rec) < 0)
                log_warning("Component %s: failed to persist the entity tag; a resume may start over.",
                            c->rec.name);
}

static void on_dl_progress(download *d, uint64_t have, uint64_t total, void *userdata) {
        component *c = userdata;

        c->rec.bytes = have;
        if (total)
                c->rec.total = total;
}

static void on_dl_done(download *d, int error, const char *reason, void *userdata) {
        component *c = userdata;
        _cleanup_free_ char *part = NULL;

        c->rec.bytes = download_get_bytes(d);
        c->dl = download_free(c->dl);
        if (error < 0) {
                log_warning_errno(error, "Component %s: download failed: %s", c->rec.name, strna(reason));
                (void) component_fail(c, result_from_download_error(error), NULL, reason ?: strerror(-error));
                return;
        }
        part = component_path(c, c->manager->dir_downloads, ".part");
        if (!part) {
                (void) component_fail(c, SWM_RESULT_OUT_OF_MEMORY, NULL, "out of memory");
                return;
        }
        component_downloaded(c, part);
}

static int component_start_download(component *c) {
        swmgr *m = c->manager;
        _cleanup_free_ char *url = NULL, *part = NULL;
        int r;

        if (c->state != SWM_DOWNLOAD_STARTED || (c->dl && download_is_running(c->dl)))
                return 0;
        if (!m->gates || !gates_is_open(m->gates, GATE_DOWNLOADS, NULL))
                return 0;
        if (!c->dl) {
                r = package_url(c, &url);
                if (r < 0)
                        return component_fail(c, r == -ENOMEM ? SWM_RESULT_OUT_OF_MEMORY : SWM_RESULT_INVALID_URI,
                                              NULL,
                                              r == -EADDRNOTAVAIL ? "relative package URL and no catalogue known"
                                                                  : "invalid package URL");
                part = component_path(c, m->dir_downloads, ".part");
                if (!part)
                        return -ENOMEM;
                r = download_new(m->event, url, part, &m->dl_options,
                                 &(download_callbacks) {
                                         .on_progress = on_dl_progress,
                                         .on_etag = on_dl_etag,
                                         .on_done = on_dl_done,
                                 },
                                 c, &c->dl);
                if (r < 0)
                        return component_fail(c, r == -ENOMEM ? SWM_RESULT_OUT_OF_MEMORY : SWM_RESULT_INVALID_URI,
                                              NULL, "invalid package URL");
                r = download_set_etag(c->dl, c->rec.etag);
                if (r < 0)
                        return r;
        }
        r = download_start(c->dl);
        if (r < 0 && r != -EALREADY)
                return r;
        swmgr_journal_download(c->rec.name, c->rec.version, true, c->rec.bytes, "downloads gate open");
        return 0;
}

static void component_pause_download(component *c, const char *why) {
        if (!c->dl || !download_is_running(c->dl))
                return;
        download_stop(c->dl);
        c->rec.bytes = download_get_bytes(c->dl);
        if (component_store_put(c->manager->store, &c->rec) < 0)
                log_warning("Component %s: failed to persist the download progress.", c->rec.name);
        swmgr_journal_download(c->rec.name, c->rec.version, false, c->rec.bytes, why);
}

static void on_gate(gate_kind kind, bool open, const char *reason, void *userdata) {
        swmgr *m = userdata;

        if (kind != GATE_DOWNLOADS)
                return;
        /* Neither a start nor a pause removes a component, so the array stays put. */
        for (size_t i = 0; i < m->n_components; i++) {
                component *c = m->components[i];

                if (c->state != SWM_DOWNLOAD_STARTED)
                        continue;
                if (open) {
                        int r = component_start_download(c);
                        if (r < 0)
                                log_warning_errno(r, "Component %s: cannot start the download: %m", c->rec.name);
                } else
                        component_pause_download(c, reason);
        }
}

/* The bytes are complete in path (the partial, or the package left by a
 * crash): verify, keep as the package, DOWNLOADED, then DELIVERED. */
static void component_downloaded(component *c, const char *path) {
        _cleanup_free_ char *reason = NULL, *pkg = component_path(c, c->manager->dir_downloads, ".pkg");
        struct stat st;
        int result, r;

        if (!pkg) {
                (void) component_fail(c, SWM_RESULT_OUT_OF_MEMORY, NULL, "out of memory");
                return;
        }
        result = verify_package(c, path, &reason);
        if (result != 0) {
                log_warning("Component %s: package rejected: %s", c->rec.name, strna(reason));
                (void) component_fail(c, result, NULL, reason ?: "package rejected");
                return;
        }
        if (!streq(path, pkg)) {
                if (rename(path, pkg) < 0) {
                        (void) component_fail(c, SWM_RESULT_INSTALL_FAILURE, NULL, "cannot keep the package");
                        return;
                }
                (void) fsync_dir(c->manager->dir_downloads);
        }
        if (stat(pkg, &st) >= 0)
                c->rec.bytes = c->rec.total = (uint64_t) st.st_size;
        r = component_transition(c, SWM_DOWNLOADED, SWM_RESULT_DOWNLOADED, false, NULL,
                                 "sha256 and signature verified");
        if (r < 0)
                return;
        /* Nothing is left to check that the bytes could change: offer it. */
        (void) component_transition(c, SWM_DELIVERED, SWM_RESULT_DOWNLOADED, false, NULL, "waiting for consent");
}

/* --- install, activation, uninstall ------------------------------------------------------------ */

static int component_install(component *c, const char *principal) {
        swmgr *m = c->manager;
        _cleanup_free_ char *pkg = component_path(c, m->dir_downloads, ".pkg");
        _cleanup_free_ char *staging = component_path(c, m->dir_staging, NULL);
        _cleanup_free_ char *inst = component_path(c, m->dir_installed, NULL);
        _cleanup_free_ char *exe = NULL, *desc = NULL;
        const char *step;
        int r;

        if (!pkg || !staging || !inst)
                return -ENOMEM;
        exe = path_join(staging, c->rec.name, NULL);
        desc = path_join(staging, "descriptor.json", NULL);
        if (!exe || !desc)
                return -ENOMEM;

        /* The rename below is the commit point on disk: once installed/<name>
         * exists the install happened, and it can happen only once. */
        if (path_exists(inst)) {
                (void) rm_rf(staging);
                (void) unlink(pkg);
                return component_transition(c, SWM_INSTALLED, SWM_RESULT_INSTALLED, false, principal, "installed");
        }

        step = "cannot clear the staging directory";
        r = rm_rf(staging);
        if (r >= 0) {
                step = "cannot create the staging directory";
                r = mkdir(staging, 0755) < 0 ? negative_errno() : 0;
        }
        if (r >= 0) {
                step = "cannot move the package into the staging directory";
                r = rename(pkg, exe) < 0 ? negative_errno() : 0;
        }
        if (r >= 0) {
                step = "cannot make the package executable";
                r = chmod(exe, 0755) < 0 ? negative_errno() : 0;
        }
        if (r >= 0) {
                step = "cannot write the descriptor";
                r = write_file_atomic(desc, c->rec.descriptor, strlen(c->rec.descriptor), 0644);
        }
        if (r >= 0) {
                step = "cannot sync the staging directory";
                r = fsync_dir(staging);
        }
        if (r >= 0) {
                step = "cannot move the staging directory into place";
                r = rename(staging, inst) < 0 ? negative_errno() : 0;
        }
        if (r < 0) {
                _cleanup_free_ char *reason = NULL;

                if (asprintf(&reason, "%s: %s", step, strerror(-r)) < 0)
                        reason = NULL;
                log_error_errno(r, "Component %s: install failed: %s", c->rec.name, strna(reason));
                (void) rm_rf(staging);
                return component_fail(c, SWM_RESULT_INSTALL_FAILURE, principal, reason ?: "install failed");
        }
        (void) fsync_dir(m->dir_installed);
        (void) fsync_dir(m->dir_staging);
        (void) fsync_dir(m->dir_downloads);
        return component_transition(c, SWM_INSTALLED, SWM_RESULT_INSTALLED, false, principal, "installed");
}

static void on_instance_exit(launch_instance *i, const launch_exit *e, void *userdata) {
        component *c = userdata;
        char what[96];

        if (e->code == CLD_EXITED)
                snprintf(what, sizeof(what), "exited with status %d", e->status);
        else if (e->code == CLD_KILLED || e->code == CLD_DUMPED)
                snprintf(what, sizeof(what), "killed by signal %s", strsignal(e->status) ?: "?");
        else
                snprintf(what, sizeof(what), "could not start: %s", strerror(e->status < 0 ? -e->status : EIO));
        if (e->will_restart)
                return; /* the launcher said so in the journal; still active */

        c->instance = launch_instance_free(c->instance);
        if (e->gave_up && c->rec.active && c->state == SWM_INSTALLED)
                (void) component_transition(c, SWM_INSTALLED, SWM_RESULT_INSTALLED, false, NULL,
                                            "%s; gave up after %u restarts", what, e->restarts);
        else
                log_info("Component %s %s.", c->rec.name, what);
}

static launch_kind component_launch_kind(component *c) {
        /* What is not a protocol stub gets the tighter sandbox. */
        return descriptor_get_kind(c->desc) == DESCRIPTOR_PROTOCOLSTUB ? LAUNCH_PROTOSTUB : LAUNCH_HYPERTY;
}

static int component_spawn(component *c) {
        swmgr *m = c->manager;
        _cleanup_free_ char *dir = component_path(c, m->dir_installed, NULL), *exe = NULL, *conf = NULL,
                            *e_name = NULL, *e_version = NULL, *e_conf = NULL, *e_kind = NULL;
        json_t *cfg = json_object_get(descriptor_get_json(c->desc), "configuration");
        int r;

        if (c->instance) {
                if (!streq(launch_instance_get_state(c->instance), "stopping"))
                        return 0;
                /* Deactivated and activated again before it was gone. */
                c->instance = launch_instance_free(c->instance);
        }
        if (!dir)
                return -ENOMEM;
        exe = path_join(dir, c->rec.name, NULL);
        conf = cfg ? json_dumps(cfg, JSON_COMPACT) : strdup("{}");
        if (!exe || !conf)
                return -ENOMEM;
        if (asprintf(&e_name, "RETHINK_COMPONENT=%s", c->rec.name) < 0 ||
            asprintf(&e_version, "RETHINK_COMPONENT_VERSION=%s", c->rec.version) < 0 ||
            asprintf(&e_conf, "RETHINK_COMPONENT_CONFIGURATION=%s", conf) < 0 ||
            asprintf(&e_kind, "RETHINK_COMPONENT_KIND=%s", launch_kind_to_string(component_launch_kind(c))) < 0)
                return -ENOMEM;

        r = launcher_start(m->launcher,
                           &(launch_spec) {
                                   .name = c->rec.name,
                                   .key = "main",
                                   .kind = component_launch_kind(c),
                                   .executable = exe,
                                   .working_directory = dir,
                                   .environment = (char *[]) { e_name, e_version, e_conf, e_kind, NULL },
                           },
                           &c->instance);
        if (r < 0)
                return r;
        launch_instance_set_exit_handler(c->instance, on_instance_exit, c);
        swmgr_journal_process(c->rec.name, c->rec.version, launch_instance_get_pid(c->instance), true);
        return 0;
}

static int component_uninstall_files(component *c, const char *principal, char **ret_error) {
        swmgr *m = c->manager;
        _cleanup_free_ char *inst = component_path(c, m->dir_installed, NULL), *trash = NULL;
        char suffix[32];
        uint64_t rnd;
        int r;

        if (!inst)
                return -ENOMEM;
        rnd = ((uint64_t) now(CLOCK_MONOTONIC) << 16) ^ (uint64_t) getpid();
        snprintf(suffix, sizeof(suffix), ".%" PRIx64, rnd);
        trash = component_path(c, m->dir_trash, suffix);
        if (!trash)
                return -ENOMEM;
        /* One rename takes it out of service; the slow removal is from the
         * trash, which every start empties. */
        if (path_exists(inst) && rename(inst, trash) < 0) {
                r = negative_errno();
                (void) component_transition(c, SWM_INSTALLED, SWM_RESULT_UNINSTALL_FAILURE, false, principal,
                                            "cannot remove the installed files: %s", strerror(-r));
                return set_error(ret_error, -EIO, "uninstall of %s failed: %s", c->rec.name, strerror(-r));
        }
        (void) fsync_dir(m->dir_installed);
        (void) rm_rf(trash);
        return 0;
}

/* Deletes the row and forgets c. */
static int component_forget(component *c, const char *principal) {
        swmgr *m = c->manager;
        int r;

        c->dl = download_free(c->dl);
        remove_download_files(c);
        r = component_store_delete(m->store, c->rec.name);
        if (r < 0)
                return log_error_errno(r, "Component %s: failed to delete its record: %m", c->rec.name);
        swmgr_journal_removed(c->rec.name, c->rec.version, principal);
        emit(m, c, c->state, principal, true);
        remove_component(m, c);
        return 0;
}

/* --- orders ------------------------------------------------------------------------------------- */

static const char *right_name(unsigned right) {
        switch (right) {
        case ACL_READ: return "read";
        case ACL_WRITE: return "write";
        case ACL_EXECUTE: return "execute";
        case ACL_DELETE: return "delete";
        default: return "create";
        }
}

static int refuse(const char *principal, const char *order, const char *name, unsigned right, char **ret_error) {
        swmgr_journal_refused(principal, order, name, right_name(right));
        return set_error(ret_error, -EACCES, "%s may not %s %s (needs the %s right)", strna(principal), order,
                         strna(name), right_name(right));
}

/* Finds the component and checks the right; a principal that may not
 * even read it learns nothing about its existence beyond the refusal. */
static int lookup(swmgr *m, const char *principal, const char *order, const char *name, unsigned right,
                  component **ret, char **ret_error) {
        component *c;

        if (!m || !acl_principal_is_valid(principal) || streq(principal, "*"))
                return set_error(ret_error, -EINVAL, "invalid principal");
        if (!name || !descriptor_name_is_valid(name))
                return set_error(ret_error, -EINVAL, "invalid component name");
        c = find_component(m, name);
        if (!c)
                return set_error(ret_error, -ENOENT, "no component %s", name);
        if (!acl_check(c->acl, principal, right))
                return refuse(principal, order, name, right, ret_error);
        *ret = c;
        return 0;
}

static bool may_create(swmgr *m, const char *principal) {
        return streq_ptr(principal, m->admin_principal) || streq_ptr(principal, m->dm_principal);
}

static int busy(component *c, const char *order, char **ret_error) {
        return set_error(ret_error, -EBUSY, "cannot %s %s in state %s", order, c->rec.name,
                         swm_state_to_string(c->state));
}

int swmgr_install(swmgr *m, const char *principal, json_t *desc_json, json_t *acl_entries, json_t **ret_value,
                  char **ret_error) {
        _cleanup_(component_freep) component *c = NULL;
        _cleanup_free_ char *text = NULL, *reason = NULL;
        _cleanup_descriptor_ descriptor *d = NULL;
        component *old, *n;
        const char *why = NULL;
        int r, result;

        if (!m || !acl_principal_is_valid(principal) || streq(principal, "*"))
                return set_error(ret_error, -EINVAL, "invalid principal");
        if (!may_create(m, principal))
                return refuse(principal, "install", NULL, 0, ret_error);
        if (!json_is_object(desc_json))
                return set_error(ret_error, -EINVAL, "descriptor: expected an object");
        text = json_dumps(desc_json, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        r = descriptor_parse(text, strlen(text), &d, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return set_error(ret_error, -EINVAL, "descriptor: %s", strna(reason));
        if (descriptor_get_kind(d) == DESCRIPTOR_RUNTIME)
                return set_error(ret_error, -EINVAL, "descriptor: a runtime is not a component");

        old = find_component(m, descriptor_get_name(d));
        if (old) {
                if (old->state != SWM_INITIAL)
                        return set_error(ret_error, -EEXIST, "component %s exists (state %s); uninstall it first",
                                         old->rec.name, swm_state_to_string(old->state));
                if (!acl_check(old->acl, principal, ACL_WRITE))
                        return refuse(principal, "replace", old->rec.name, ACL_WRITE, ret_error);
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->manager = m;
        r = acl_new(principal, &c->acl);
        if (r < 0)
                return r;
        if ((r = acl_set(c->acl, m->admin_principal, ACL_ALL)) < 0 ||
            (m->dm_principal && (r = acl_set(c->acl, m->dm_principal, ACL_ALL)) < 0))
                return r;
        if (acl_entries && !json_is_null(acl_entries)) {
                r = acl_apply_entries(c->acl, acl_entries, &why);
                if (r == -EINVAL)
                        return set_error(ret_error, r, "%s", strna(why));
                if (r < 0)
                        return r;
        }
        c->rec = (component_record) {
                .name = strdup(descriptor_get_name(d)),
                .version = strdup(descriptor_get_version(d)),
                .descriptor = TAKE_PTR(text),
                .state = strdup(swm_state_to_string(SWM_INITIAL)),
                .result = SWM_RESULT_INITIAL,
                .reason = strdup("created"),
        };
        if (!c->rec.name || !c->rec.version || !c->rec.state || !c->rec.reason)
                return -ENOMEM;
        r = component_set_acl_record(c);
        if (r < 0)
                return r;
        c->desc = TAKE_PTR(d);
        c->state = SWM_INITIAL;

        /* Steps 8-11 of the bootstrap: the component and its ACL exist
         * from here on, whatever the checks say. */
        r = component_store_put(m->store, &c->rec);
        if (r < 0)
                return set_error(ret_error, r, "cannot store the component: %s", strerror(-r));
        if (old)
                remove_component(m, old);
        r = add_component(m, c);
        if (r < 0) {
                (void) component_store_delete(m->store, c->rec.name);
                return r;
        }
        n = TAKE_PTR(c);
        swmgr_journal_transition(n->rec.name, n->rec.version, swm_state_to_string(SWM_INITIAL),
                                 swm_state_to_string(SWM_INITIAL), SWM_RESULT_INITIAL,
                                 swm_result_to_string(SWM_RESULT_INITIAL), "created", false, principal);
        emit(m, n, SWM_INITIAL, principal, false);

        result = check_constraints(n, &reason);
        if (result == 0) {
                _cleanup_free_ char *url = NULL;

                r = package_url(n, &url);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        result = SWM_RESULT_INVALID_URI;
                        reason = strdup(r == -EADDRNOTAVAIL ? "relative package URL and no catalogue known"
                                                            : "package URL is not http(s)://host[:port]/path");
                }
        }
        if (result != 0) {
                log_notice("Component %s refused: %s", n->rec.name, strna(reason));
                (void) component_fail(n, result, principal, reason ?: "refused");
                return reply_component(n, ret_value);
        }

        r = component_transition(n, SWM_DOWNLOAD_STARTED, SWM_RESULT_DOWNLOADING, false, principal,
                                 m->gates && gates_is_open(m->gates, GATE_DOWNLOADS, NULL)
                                         ? "downloading"
                                         : "waiting for the downloads gate");
        if (r < 0)
                return set_error(ret_error, r, "cannot store the component: %s", strerror(-r));
        if (m->started) {
                r = component_start_download(n);
                if (r < 0)
                        log_warning_errno(r, "Component %s: cannot start the download: %m", n->rec.name);
        }
        /* The download may have failed at once (bad URL): n is still there. */
        return reply_component(n, ret_value);
}

int swmgr_confirm(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error) {
        component *c;
        int r;

        r = lookup(m, principal, "confirm", name, ACL_WRITE, &c, ret_error);
        if (r < 0)
                return r;
        if (c->state != SWM_DELIVERED)
                return busy(c, "confirm", ret_error);
        swmgr_journal_consent(c->rec.name, c->rec.version, true, principal);
        r = component_transition(c, SWM_INSTALLING, SWM_RESULT_DOWNLOADED, false, principal, "installing");
        if (r < 0)
                return set_error(ret_error, r, "cannot store the intent: %s", strerror(-r));
        r = component_install(c, principal);
        if (r < 0)
                return set_error(ret_error, r, "install of %s failed: %s", name, strerror(-r));
        if (c->state != SWM_INSTALLED) {
                (void) reply_component(c, NULL);
                return set_error(ret_error, -EIO, "install of %s failed: %s", name, strna(c->rec.reason));
        }
        return reply_component(c, ret_value);
}

int swmgr_cancel(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error) {
        component *c;
        int r;

        r = lookup(m, principal, "cancel", name, ACL_DELETE, &c, ret_error);
        if (r < 0)
                return r;
        if (!IN_SET_SWM(c->state, SWM_DOWNLOAD_STARTED, SWM_DOWNLOADED, SWM_DELIVERED))
                return busy(c, "cancel", ret_error);
        if (c->state == SWM_DELIVERED)
                swmgr_journal_consent(c->rec.name, c->rec.version, false, principal);
        r = component_fail(c, SWM_RESULT_INITIAL, principal, "cancelled");
        if (r < 0)
                return set_error(ret_error, r, "cannot store the cancellation: %s", strerror(-r));
        return reply_component(c, ret_value);
}

int swmgr_activate(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error) {
        component *c;
        int r;

        r = lookup(m, principal, "activate", name, ACL_EXECUTE, &c, ret_error);
        if (r < 0)
                return r;
        if (c->state != SWM_INSTALLED)
                return busy(c, "activate", ret_error);
        if (c->instance && c->rec.active)
                return reply_component(c, ret_value);
        /* Wanted first, then started: a crash in between starts it on restart. */
        r = component_transition(c, SWM_INSTALLED, SWM_RESULT_INSTALLED, true, principal, "activated");
        if (r < 0)
                return set_error(ret_error, r, "cannot store the activation: %s", strerror(-r));
        r = component_spawn(c);
        if (r < 0) {
                (void) component_transition(c, SWM_INSTALLED, SWM_RESULT_INSTALLED, false, principal,
                                            "cannot start: %s", strerror(-r));
                return set_error(ret_error, -EIO, "cannot start %s: %s", name, strerror(-r));
        }
        return reply_component(c, ret_value);
}

int swmgr_deactivate(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error) {
        component *c;
        int r;

        r = lookup(m, principal, "deactivate", name, ACL_EXECUTE, &c, ret_error);
        if (r < 0)
                return r;
        if (c->state != SWM_INSTALLED)
                return busy(c, "deactivate", ret_error);
        if (c->rec.active) {
                r = component_transition(c, SWM_INSTALLED, SWM_RESULT_INSTALLED, false, principal, "deactivated");
                if (r < 0)
                        return set_error(ret_error, r, "cannot store the deactivation: %s", strerror(-r));
        }
        if (c->instance) {
                swmgr_journal_process(c->rec.name, c->rec.version, launch_instance_get_pid(c->instance), false);
                /* Nothing left to wait for (it was between restarts): done. */
                if (launcher_stop(c->instance) == 0)
                        c->instance = launch_instance_free(c->instance);
        }
        return reply_component(c, ret_value);
}

int swmgr_uninstall(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error) {
        component *c;
        json_t *v = NULL;
        int r;

        r = lookup(m, principal, "uninstall", name, ACL_DELETE, &c, ret_error);
        if (r < 0)
                return r;
        if (IN_SET_SWM(c->state, SWM_INSTALLING, SWM_UNINSTALLING))
                return busy(c, "uninstall", ret_error);
        if (c->state == SWM_INSTALLED) {
                if (c->instance) {
                        /* Killed here: the files are about to go. */
                        swmgr_journal_process(c->rec.name, c->rec.version, launch_instance_get_pid(c->instance),
                                              false);
                        c->instance = launch_instance_free(c->instance);
                }
                r = component_transition(c, SWM_UNINSTALLING, SWM_RESULT_INSTALLED, false, principal, "uninstalling");
                if (r < 0)
                        return set_error(ret_error, r, "cannot store the intent: %s", strerror(-r));
                r = component_uninstall_files(c, principal, ret_error);
                if (r < 0)
                        return r;
        }
        if (ret_value) {
                v = json_pack("{s:s, s:b}", "name", name, "removed", true);
                if (!v)
                        return -ENOMEM;
        }
        r = component_forget(c, principal);
        if (r < 0) {
                json_decref(v);
                return set_error(ret_error, r, "cannot delete the record: %s", strerror(-r));
        }
        if (ret_value)
                *ret_value = v;
        return 0;
}

int swmgr_get(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error) {
        component *c;
        int r;

        r = lookup(m, principal, "read", name, ACL_READ, &c, ret_error);
        if (r < 0)
                return r;
        return reply_component(c, ret_value);
}

int swmgr_list(swmgr *m, const char *principal, json_t **ret_value) {
        json_t *a;

        if (!m || !ret_value)
                return -EINVAL;
        a = json_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_components; i++) {
                component *c = m->components[i];
                json_t *o;

                if (!acl_check(c->acl, principal, ACL_READ))
                        continue;
                o = component_json(c);
                if (!o || json_array_append_new(a, o) < 0) {
                        json_decref(a);
                        return -ENOMEM;
                }
        }
        *ret_value = json_pack("{s:o}", "components", a);
        return *ret_value ? 0 : -ENOMEM;
}

int swmgr_order(swmgr *m, const char *principal, json_t *order, json_t **ret_value, char **ret_error) {
        const char *what, *key, *name;
        json_t *v;

        if (!m)
                return -EINVAL;
        if (!json_is_object(order) || !json_is_string(json_object_get(order, "order")))
                return set_error(ret_error, -EINVAL, "order: expected {\"order\": \"...\", ...}");
        what = json_string_value(json_object_get(order, "order"));
        json_object_foreach(order, key, v)
                if (!streq(key, "order") && !streq(key, "name") && !streq(key, "descriptor") && !streq(key, "acl"))
                        return set_error(ret_error, -EINVAL, "order: unknown field");
        if (streq(what, "install")) {
                if (json_object_get(order, "name"))
                        return set_error(ret_error, -EINVAL, "order install: the name comes from the descriptor");
                return swmgr_install(m, principal, json_object_get(order, "descriptor"), json_object_get(order, "acl"),
                                     ret_value, ret_error);
        }
        if (json_object_get(order, "descriptor") || json_object_get(order, "acl"))
                return set_error(ret_error, -EINVAL, "order %s: only \"name\" is allowed", what);
        v = json_object_get(order, "name");
        if (!json_is_string(v))
                return set_error(ret_error, -EINVAL, "order %s: \"name\" is required", what);
        name = json_string_value(v);
        if (streq(what, "confirm"))
                return swmgr_confirm(m, principal, name, ret_value, ret_error);
        if (streq(what, "cancel"))
                return swmgr_cancel(m, principal, name, ret_value, ret_error);
        if (streq(what, "activate"))
                return swmgr_activate(m, principal, name, ret_value, ret_error);
        if (streq(what, "deactivate"))
                return swmgr_deactivate(m, principal, name, ret_value, ret_error);
        if (streq(what, "uninstall"))
                return swmgr_uninstall(m, principal, name, ret_value, ret_error);
        if (streq(what, "read"))
                return swmgr_get(m, principal, name, ret_value, ret_error);
        return set_error(ret_error, -EINVAL, "order: unknown order");
}

int swmgr_handle_message(swmgr *m, const char *principal, const rt_message *request, rt_message **ret) {
        _cleanup_free_ char *error = NULL;
        json_t *order, *value = NULL;
        rt_message_type type;
        int r;

        if (!m || !request || !ret)
                return -EINVAL;
        type = rt_message_get_type(request);
        if (type == RT_MESSAGE_RESPONSE)
                return -EINVAL;
        order = rt_message_get_value(request);
        if (type != RT_MESSAGE_EXECUTE && type != RT_MESSAGE_CREATE && type != RT_MESSAGE_READ &&
            type != RT_MESSAGE_DELETE)
                r = set_error(&error, -EINVAL, "software management takes execute, create, read and delete");
        else if (type == RT_MESSAGE_READ && !order)
                r = swmgr_list(m, principal, &value);
        else
                r = swmgr_order(m, principal, order, &value, &error);
        if (r < 0) {
                if (r == -ENOMEM)
                        return r;
                return rt_message_new_error(request, NULL, swmgr_error_to_status(r), error ?: strerror(-r), ret);
        }
        r = rt_message_new_response(request, NULL, type == RT_MESSAGE_CREATE ? 201 : 200, NULL, value, ret);
        json_decref(value);
        return r;
}

/* --- recovery ------------------------------------------------------------------------------------ */

/* Which download files a state accounts for: a partial only until the
 * bytes are complete, the package until it moved into staging. */
static bool owns_download_file(swm_state s, bool partial) {
        if (partial)
                return IN_SET_SWM(s, SWM_DOWNLOAD_STARTED, SWM_DOWNLOADED);
        return IN_SET_SWM(s, SWM_DOWNLOAD_STARTED, SWM_DOWNLOADED, SWM_DELIVERED, SWM_INSTALLING);
}

/* Removes what no record accounts for: leftovers of failures, of
 * components whose row is gone, temporary files of atomic writes. */
static void remove_orphans(swmgr *m) {
        const char *dirs[] = { m->dir_downloads, m->dir_staging, m->dir_installed, m->dir_trash };

        for (size_t k = 0; k < ELEMENTSOF(dirs); k++) {
                _cleanup_(closedirp_swm) DIR *d = opendir(dirs[k]);
                struct dirent *de;

                if (!d)
                        continue;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *name = NULL, *path = NULL;
                        const char *suffix = NULL;
                        component *c;
                        bool keep = false;

                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        if (k == 0) {
                                suffix = strrchr(de->d_name, '.');
                                if (suffix && (streq(suffix, ".part") || streq(suffix, ".pkg")))
                                        name = strndup(de->d_name, suffix - de->d_name);
                        } else if (k != 3)
                                name = strdup(de->d_name);
                        c = name ? find_component(m, name) : NULL;
                        if (c) {
                                if (k == 0)
                                        keep = owns_download_file(c->state, streq(suffix, ".part"));
                                else if (k == 1)
                                        keep = c->state == SWM_INSTALLING;
                                else
                                        keep = IN_SET_SWM(c->state, SWM_INSTALLING, SWM_INSTALLED, SWM_UNINSTALLING);
                        }
                        if (keep)
                                continue;
                        path = path_join(dirs[k], de->d_name, NULL);
                        if (!path)
                                continue;
                        log_info("Removing orphaned software file %s.", path);
                        (void) rm_rf(path);
                }
        }
        for (size_t k = 0; k < ELEMENTSOF(dirs); k++)
                (void) fsync_dir(dirs[k]);
}

static void recover_component(component *c) {
        swmgr *m = c->manager;
        _cleanup_free_ char *part = component_path(c, m->dir_downloads, ".part");
        _cleanup_free_ char *pkg = component_path(c, m->dir_downloads, ".pkg");
        _cleanup_free_ char *staging = component_path(c, m->dir_staging, NULL);
        _cleanup_free_ char *inst = component_path(c, m->dir_installed, NULL);
        _cleanup_free_ char *staged = NULL;
        int r;

        if (!part || !pkg || !staging || !inst)
                return (void) log_oom();
        swmgr_journal_recovery(c->rec.name, c->rec.version, swm_state_to_string(c->state));

        switch (c->state) {
        case SWM_INITIAL:
                break;
        case SWM_DOWNLOAD_STARTED:
                /* Verified and renamed, but the commit did not make it. */
                if (path_exists(pkg) && !path_exists(part))
                        component_downloaded(c, pkg);
                break;
        case SWM_DELIVERED:
                /* Still waiting for consent: check the bytes again, quietly. */
                if (path_exists(pkg)) {
                        _cleanup_free_ char *reason = NULL;
                        int result = verify_package(c, pkg, &reason);

                        if (result != 0)
                                (void) component_fail(c, result, NULL, reason ?: "package rejected");
                        break;
                }
                __attribute__((fallthrough));
        case SWM_DOWNLOADED:
                if (path_exists(pkg))
                        component_downloaded(c, pkg);
                else if (path_exists(part))
                        component_downloaded(c, part);
                else
                        (void) component_fail(c, SWM_RESULT_INTEGRITY, NULL, "package lost");
                break;
        case SWM_INSTALLING:
                if (path_exists(inst)) {
                        (void) component_install(c, NULL);
                        break;
                }
                /* Roll the staging directory back to the package, then
                 * install again: the consent was given. */
                staged = path_join(staging, c->rec.name, NULL);
                if (staged && path_exists(staged) && !path_exists(pkg))
                        (void) rename(staged, pkg);
                (void) rm_rf(staging);
                if (!path_exists(pkg)) {
                        (void) component_fail(c, SWM_RESULT_INSTALL_FAILURE, NULL, "package lost during installation");
                        break;
                }
                {
                        _cleanup_free_ char *reason = NULL;
                        int result = verify_package(c, pkg, &reason);

                        if (result != 0) {
                                (void) component_fail(c, result, NULL, reason ?: "package rejected");
                                break;
                        }
                }
                (void) component_install(c, NULL);
                break;
        case SWM_INSTALLED:
                if (!path_exists(inst)) {
                        (void) component_fail(c, SWM_RESULT_INSTALL_FAILURE, NULL, "installed files are missing");
                        break;
                }
                if (c->rec.active) {
                        r = component_spawn(c);
                        if (r < 0) {
                                log_error_errno(r, "Component %s: cannot start: %m", c->rec.name);
                                (void) component_transition(c, SWM_INSTALLED, SWM_RESULT_INSTALLED, false, NULL,
                                                            "cannot start: %s", strerror(-r));
                        }
                }
                break;
        case SWM_UNINSTALLING:
                if (component_uninstall_files(c, NULL, NULL) >= 0)
                        (void) component_forget(c, NULL);
                break;
        default:
                break;
        }
}

int swmgr_start(swmgr *m) {
        component_record *recs = NULL;
        size_t n = 0;
        sigset_t mask;
        int r;

        if (!m)
                return -EINVAL;
        if (m->started)
                return -EALREADY;

        /* sd_event_add_child() needs SIGCHLD blocked. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();

        r = component_store_list(m->store, &recs, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to read the component records: %m");
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *name = recs[i].name ? strdup(recs[i].name) : NULL;
                component *c = NULL;

                r = component_from_record(m, &recs[i], &c);
                if (r >= 0)
                        r = add_component(m, c);
                if (r < 0) {
                        component_free(c);
                        log_error_errno(r, "Component record %s is unusable, dropping it: %m", strna(name));
                        if (name)
                                (void) component_store_delete(m->store, name);
                }
        }
        component_records_free(recs, n);

        remove_orphans(m);

        /* recover_component() may remove entries (finished uninstalls). */
        for (size_t i = 0; i < m->n_components;) {
                component *c = m->components[i];
                size_t before = m->n_components;

                recover_component(c);
                if (m->n_components == before)
                        i++;
        }

        m->started = true;
        if (m->gates) {
                r = gates_subscribe(m->gates, GATE_DOWNLOADS, on_gate, m, &m->gate_sub);
                if (r < 0)
                        return r;
                if (gates_is_open(m->gates, GATE_DOWNLOADS, NULL))
                        on_gate(GATE_DOWNLOADS, true, "open", m);
        }
        return 0;
}

int swmgr_get_executable(swmgr *m, const char *name, char **ret_path, bool *ret_protostub) {
        component *c = m ? find_component(m, name) : NULL;
        _cleanup_free_ char *dir = NULL;
        char *exe;

        if (!c || c->state != SWM_INSTALLED)
                return -ENOENT;
        dir = component_path(c, m->dir_installed, NULL);
        exe = dir ? path_join(dir, c->rec.name, NULL) : NULL;
        if (!exe)
                return -ENOMEM;
        if (ret_protostub)
                *ret_protostub = descriptor_get_kind(c->desc) == DESCRIPTOR_PROTOCOLSTUB;
        *ret_path = exe;
        return 0;
}
