/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include "backoff.h"
#include "fileio.h"
#include "launcher.h"
#include "strv.h"
#include "log.h"
#include "sha256.h"

#define LAUNCH_MESSAGE_ID_STARTED "36d2d1e244994def8cca07bbb1030e69"
#define LAUNCH_MESSAGE_ID_EXITED  "f2b528b70727459783a748184e6bfe6a"
#define LAUNCH_MESSAGE_ID_GAVE_UP "c171816646fb4a88a2603628618c2922"
#define LAUNCH_MESSAGE_ID_STOPPED "66e01e9a3dcb4d52b94a025ad1bdbacc"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CREDENTIAL_NAME_MAX 64
#define NAME_MAX_LEN 64
/* A unit of the same name from the previous run may not be collected yet. */
#define UNIT_EXISTS_RETRY_USEC (200 * USEC_PER_MSEC)
#define UNIT_EXISTS_RETRIES 25

#define SD_DEST "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
#define SD_MANAGER "org.freedesktop.systemd1.Manager"
#define SD_UNIT "org.freedesktop.systemd1.Unit"
#define SD_SERVICE "org.freedesktop.systemd1.Service"

typedef enum istate {
        I_STARTING,
        I_RUNNING,
        I_STOPPING,
        I_RESTARTING,
        I_STOPPED,
        I_FAILED,
        _I_MAX,
} istate;

static const char *const istate_names[_I_MAX] = {
        [I_STARTING] = "starting", [I_RUNNING] = "running",   [I_STOPPING] = "stopping",
        [I_RESTARTING] = "restarting", [I_STOPPED] = "stopped", [I_FAILED] = "failed",
};

/* The launcher's own copy of a launch_spec. */
typedef struct spec_store {
        char *name, *key, *executable, *working_directory, *bus_socket;
        launch_kind kind;
        char **environment;
        char **cred_names, **cred_values;
        size_t n_credentials;
} spec_store;

struct launch_instance {
        launcher *launcher;
        launch_instance *prev, *next;
        spec_store spec;
        char *unit, *unit_path;
        istate state;
        bool stop_requested;
        pid_t pid;
        usec_t started_usec;
        backoff *backoff;
        usec_t *exits;                  /* exit times within the window, oldest first */
        size_t n_exits;
        unsigned restarts;
        sd_event_source *child, *kill_timer, *restart_timer;
        void *userdata;
        launch_exit_handler_t on_exit;
        void *exit_userdata;

        /* systemd mode */
        bool run;                       /* a start was asked for and its end not seen */
        bool queued;                    /* waits for the cleanup of leftover units */
        bool job_done;                  /* the start job finished with "done" */
        unsigned exists_retries;
        char active_state[16];
        int main_code, main_status;
        char *job;                      /* the start job of the current run */
        sd_bus_slot *props_slot, *call_slot, *query_slot;
};

typedef struct leftover {
        char *unit;
        struct leftover *next;
} leftover;

struct launcher {
        sd_event *event;
        launcher_mode mode;
        bool auto_mode;
        usec_t restart_initial, restart_max, restart_window, stable_after, stop_timeout;
        unsigned restart_burst;
        char *unit_prefix, *slice;
        char *credentials_dir;

        sd_bus *bus;
        sd_bus_slot *job_removed_slot;
        leftover *leftovers;
        bool cleanup_pending;

        launch_instance *instances;

        launch_prepare_handler_t prepare;
        void *prepare_userdata;
        launch_exit_handler_t on_exit;
        void *exit_userdata;
        launch_started_handler_t on_started;
        void *started_userdata;
};

static const char *const mode_names[_LAUNCHER_MODE_MAX] = {
        [LAUNCHER_AUTO] = "auto",
        [LAUNCHER_SYSTEMD] = "systemd",
        [LAUNCHER_FORK] = "fork",
};

static const char *const kind_names[_LAUNCH_KIND_MAX] = {
        [LAUNCH_HYPERTY] = "hyperty",
        [LAUNCH_PROTOSTUB] = "protostub",
};

const char *launcher_mode_to_string(launcher_mode m) {
        return m >= 0 && m < _LAUNCHER_MODE_MAX ? mode_names[m] : NULL;
}

launcher_mode launcher_mode_from_string(const char *s) {
        for (launcher_mode m = 0; s && m < _LAUNCHER_MODE_MAX; m++)
                if (streq(mode_names[m], s))
                        return m;
        return _LAUNCHER_MODE_INVALID;
}

const char *launch_kind_to_string(launch_kind k) {
        return k >= 0 && k < _LAUNCH_KIND_MAX ? kind_names[k] : NULL;
}

launch_kind launch_kind_from_string(const char *s) {
        for (launch_kind k = 0; s && k < _LAUNCH_KIND_MAX; k++)
                if (streq(kind_names[k], s))
                        return k;
        return _LAUNCH_KIND_INVALID;
}

/* --- validation and names -------------------------------------------------------------- */

#define IN_SET_ERRNO(x, a, b, c) ((x) == (a) || (x) == (b) || (x) == (c))

static bool name_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > NAME_MAX_LEN || !isalnum((unsigned char) s[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr("._-", s[i]))
                        return false;
        return true;
}

static bool credential_name_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > CREDENTIAL_NAME_MAX || streq(s, ".") || streq(s, ".."))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr("._-", s[i]))
                        return false;
        return true;
}

static bool env_assignment_is_valid(const char *s) {
        const char *eq = strchr(s, '=');

        if (!eq || eq == s)
                return false;
        for (const char *p = s; p < eq; p++)
                if (!isalnum((unsigned char) *p) && *p != '_')
                        return false;
        return !isdigit((unsigned char) s[0]);
}

static bool prefix_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 32)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-')
                        return false;
        return true;
}

int launcher_unit_name(const char *prefix, launch_kind kind, const char *name, const char *key, char **ret) {
        uint8_t d[SHA256_DIGEST_SIZE];
        char *u;
        int r;

        if (!prefix || !prefix_is_valid(prefix) || !launch_kind_to_string(kind) || !name_is_valid(name) || !key ||
            !*key || !ret)
                return -EINVAL;
        r = sha256_buffer(key, strlen(key), d);
        if (r < 0)
                return r;
        if (asprintf(&u, "%s-%s-%s-%02x%02x%02x%02x.service", prefix, launch_kind_to_string(kind), name, d[0], d[1],
                     d[2], d[3]) < 0)
                return -ENOMEM;
        *ret = u;
        return 0;
}

/* --- spec copies --------------------------------------------------------------------------- */

static void spec_store_done(spec_store *s) {
        free(s->name);
        free(s->key);
        free(s->executable);
        free(s->working_directory);
        free(s->bus_socket);
        freestrvp(&s->environment);
        for (size_t i = 0; i < s->n_credentials; i++) {
                if (s->cred_values[i])
                        explicit_bzero_safe(s->cred_values[i], strlen(s->cred_values[i]));
                free(s->cred_names[i]);
                free(s->cred_values[i]);
        }
        free(s->cred_names);
        free(s->cred_values);
        *s = (spec_store) {};
}

static size_t strv_length(char *const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

static int strv_copy(char *const *l, char ***ret) {
        size_t n = strv_length(l);
        _cleanup_strv_free_ char **c = calloc(n + 1, sizeof(char *));

        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(l[i])))
                        return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

static int dup_or_null(const char *s, char **ret) {
        *ret = NULL;
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int spec_validate(const launch_spec *s) {
        if (!s || !name_is_valid(s->name) || (s->key && !*s->key) || !launch_kind_to_string(s->kind))
                return -EINVAL;
        if (!s->executable || s->executable[0] != '/' || strlen(s->executable) >= 4096)
                return -EINVAL;
        if (s->working_directory && s->working_directory[0] != '/')
                return -EINVAL;
        if (s->bus_socket && s->bus_socket[0] != '/')
                return -EINVAL;
        for (char *const *e = s->environment; e && *e; e++)
                if (!env_assignment_is_valid(*e))
                        return -EINVAL;
        if (s->n_credentials > 0 && !s->credentials)
                return -EINVAL;
        for (size_t i = 0; i < s->n_credentials; i++)
                if (!credential_name_is_valid(s->credentials[i].name) || !s->credentials[i].value)
                        return -EINVAL;
        return 0;
}

static int spec_store_from(const launch_spec *s, spec_store *ret) {
        spec_store c = {};
        int r;

        r = spec_validate(s);
        if (r < 0)
                return r;
        c.kind = s->kind;
        if (dup_or_null(s->name, &c.name) < 0 || dup_or_null(s->key ?: "main", &c.key) < 0 ||
            dup_or_null(s->executable, &c.executable) < 0 ||
            dup_or_null(s->working_directory, &c.working_directory) < 0 ||
            dup_or_null(s->bus_socket, &c.bus_socket) < 0 || strv_copy(s->environment, &c.environment) < 0)
                goto oom;
        if (s->n_credentials > 0) {
                c.cred_names = calloc(s->n_credentials, sizeof(char *));
                c.cred_values = calloc(s->n_credentials, sizeof(char *));
                if (!c.cred_names || !c.cred_values)
                        goto oom;
                c.n_credentials = s->n_credentials;
                for (size_t i = 0; i < s->n_credentials; i++)
                        if (dup_or_null(s->credentials[i].name, &c.cred_names[i]) < 0 ||
                            dup_or_null(s->credentials[i].value, &c.cred_values[i]) < 0)
                                goto oom;
        }
        *ret = c;
        return 0;
oom:
        spec_store_done(&c);
        return -ENOMEM;
}

/* A view of the store; creds is sized n_credentials by the caller. */
static void spec_store_view(const spec_store *s, launch_credential *creds, launch_spec *ret) {
        for (size_t i = 0; i < s->n_credentials; i++)
                creds[i] = (launch_credential) { s->cred_names[i], s->cred_values[i] };
        *ret = (launch_spec) {
                .name = s->name,
                .key = s->key,
                .kind = s->kind,
                .executable = s->executable,
                .working_directory = s->working_directory,
                .environment = s->environment,
                .credentials = creds,
                .n_credentials = s->n_credentials,
                .bus_socket = s->bus_socket,
        };
}

/* --- journal -------------------------------------------------------------------------------- */

#define INSTANCE_FIELDS(i)                                                              \
        LOG_FIELD("COMPONENT", "%s", (i)->spec.name),                                   \
        LOG_FIELD("COMPONENT_KIND", "%s", launch_kind_to_string((i)->spec.kind)),       \
        LOG_FIELD("COMPONENT_INSTANCE", "%s", (i)->spec.key),                           \
        LOG_FIELD("COMPONENT_UNIT", "%s", (i)->unit),                                   \
        LOG_FIELD("LAUNCHER", "%s", launcher_mode_to_string((i)->launcher->mode))

static void describe_exit(int code, int status, char *buf, size_t n) {
        if (code == CLD_EXITED)
                snprintf(buf, n, "exited with status %d", status);
        else if (code == CLD_KILLED || code == CLD_DUMPED)
                snprintf(buf, n, "killed by signal %s%s", sigabbrev_np(status) ?: "?",
                         code == CLD_DUMPED ? " (core dumped)" : "");
        else
                snprintf(buf, n, "failed to start: %s", strerror(status < 0 ? -status : EIO));
}

static const char *exit_code_name(int code) {
        switch (code) {
        case CLD_EXITED: return "exited";
        case CLD_KILLED: return "killed";
        case CLD_DUMPED: return "dumped";
        default: return "start-failed";
        }
}

static void journal_started(launch_instance *i) {
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Component %s (%s, instance %s) started as process %d%s%s.", i->spec.name,
                               launch_kind_to_string(i->spec.kind), i->spec.key, (int) i->pid,
                               i->launcher->mode == LAUNCHER_SYSTEMD ? " in " : "",
                               i->launcher->mode == LAUNCHER_SYSTEMD ? i->unit : ""),
                   LOG_MESSAGE_ID(LAUNCH_MESSAGE_ID_STARTED),
                   INSTANCE_FIELDS(i),
                   LOG_FIELD("LAUNCH_PID", "%d", (int) i->pid),
                   LOG_FIELD("LAUNCH_RESTARTS", "%u", i->restarts));
}

static void journal_exit(launch_instance *i, const launch_exit *e) {
        char what[96], delay[64] = "";
        const char *id = LAUNCH_MESSAGE_ID_EXITED;
        int level = LOG_NOTICE;

        describe_exit(e->code, e->status, what, sizeof(what));
        if (e->stopped) {
                id = LAUNCH_MESSAGE_ID_STOPPED;
                level = LOG_INFO;
        } else if (e->gave_up) {
                id = LAUNCH_MESSAGE_ID_GAVE_UP;
                level = LOG_WARNING;
        } else
                snprintf(delay, sizeof(delay), "%" PRIu64 ".%03" PRIu64 " s", e->restart_usec / USEC_PER_SEC,
                         (e->restart_usec % USEC_PER_SEC) / USEC_PER_MSEC);

        log_struct(level,
                   e->stopped ? LOG_MESSAGE("Component %s (instance %s) stopped: %s.", i->spec.name, i->spec.key, what)
                   : e->gave_up
                           ? LOG_MESSAGE("Component %s (instance %s) %s; gave up after %u exits within %" PRIu64
                                         " s (%u restarts).",
                                         i->spec.name, i->spec.key, what, i->launcher->restart_burst,
                                         i->launcher->restart_window / USEC_PER_SEC, e->restarts)
                           : LOG_MESSAGE("Component %s (instance %s) %s; restarting in %s.", i->spec.name,
                                         i->spec.key, what, delay),
                   LOG_MESSAGE_ID(id),
                   INSTANCE_FIELDS(i),
                   LOG_FIELD("LAUNCH_EXIT_CODE", "%s", exit_code_name(e->code)),
                   LOG_FIELD("LAUNCH_EXIT_STATUS", "%d", e->status),
                   LOG_FIELD("LAUNCH_RESTARTS", "%u", e->restarts),
                   LOG_FIELD("LAUNCH_RESTART_USEC", "%" PRIu64, e->will_restart ? e->restart_usec : 0));
}

/* --- common state machine ---------------------------------------------------------------------- */

static int instance_start_now(launch_instance *i, bool report);
static void remove_credentials(launch_instance *i);

static void instance_running(launch_instance *i, pid_t pid) {
        launcher *l = i->launcher;

        i->pid = pid;
        i->state = I_RUNNING;
        i->started_usec = now(CLOCK_MONOTONIC);
        journal_started(i);
        if (l->on_started)
                l->on_started(i, pid, l->started_userdata);
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        launch_instance *i = userdata;

        i->restart_timer = sd_event_source_disable_unref(i->restart_timer);
        if (i->state != I_RESTARTING)
                return 0;
        i->restarts++;
        (void) instance_start_now(i, true); /* a failure goes through instance_exited() */
        return 0;
}

/* The process of the current run is gone (or never came). May free i
 * through the handler: nothing touches i after the handler. */
static void instance_exited(launch_instance *i, int code, int status) {
        launcher *l = i->launcher;
        usec_t t = now(CLOCK_MONOTONIC);
        launch_exit e = { .code = code, .status = status, .restarts = i->restarts };
        size_t k = 0;
        int r;

        /* Whatever the mode is now: a fall-back to fork/exec switched it
         * after the file was written. An unlink that finds nothing is fine. */
        remove_credentials(i);
        i->pid = 0;
        i->run = false;
        i->job_done = false;
        i->child = sd_event_source_disable_unref(i->child);
        i->kill_timer = sd_event_source_disable_unref(i->kill_timer);

        if (i->stop_requested) {
                i->state = I_STOPPED;
                e.stopped = true;
        } else {
                /* A long, quiet run: earlier trouble is forgotten. */
                if (i->started_usec > 0 && t - i->started_usec >= l->stable_after) {
                        backoff_reset(i->backoff);
                        i->n_exits = 0;
                }
                while (k < i->n_exits && t - i->exits[k] > l->restart_window)
                        k++;
                memmove(i->exits, i->exits + k, (i->n_exits - k) * sizeof(usec_t));
                i->n_exits -= k;
                if (i->n_exits == l->restart_burst) { /* cannot happen: kept below burst */
                        memmove(i->exits, i->exits + 1, (i->n_exits - 1) * sizeof(usec_t));
                        i->n_exits--;
                }
                i->exits[i->n_exits++] = t;

                if (i->n_exits >= l->restart_burst) {
                        i->state = I_FAILED;
                        e.gave_up = true;
                } else {
                        usec_t d = 0;

                        r = backoff_next_delay(i->backoff, &d);
                        if (r >= 0)
                                r = event_reset_time_relative(l->event, &i->restart_timer, d, on_restart_timer, i,
                                                              "launcher-restart");
                        if (r < 0) {
                                log_error_errno(r, "Component %s: cannot schedule a restart: %m", i->spec.name);
                                i->state = I_FAILED;
                                e.gave_up = true;
                        } else {
                                i->state = I_RESTARTING;
                                e.will_restart = true;
                                e.restart_usec = d;
                        }
                }
        }
        i->started_usec = 0;
        journal_exit(i, &e);
        if (l->on_exit)
                l->on_exit(i, &e, l->exit_userdata);
        /* Last: the owner may free it. */
        if (i->on_exit)
                i->on_exit(i, &e, i->exit_userdata);
}

/* --- fork/exec ---------------------------------------------------------------------------------- */

static char *credential_env_name(const char *name) {
        char *n = strdup(name);

        if (!n)
                return NULL;
        for (char *p = n; *p; p++)
                *p = *p == '-' || *p == '.' ? '_' : (char) toupper((unsigned char) *p);
        return n;
}

static bool env_has(char *const *env, const char *name) {
        size_t n = strlen(name);

        for (; env && *env; env++)
                if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
                        return true;
        return false;
}

/* The environment of an instance: the spec's, RETHINK_BUS when there is a
 * bus, PATH when the spec has none, and with fork/exec the credentials. */
static int build_env(launch_instance *i, bool with_credentials, const char *bus_path, char ***ret) {
        _cleanup_strv_free_ char **env = NULL;
        size_t n = 0;
        int r;

        for (char **e = i->spec.environment; e && *e; e++) {
                if (bus_path && strncmp(*e, "RETHINK_BUS=", 12) == 0)
                        continue;
                r = strv_push_printf(&env, &n, "%s", *e);
                if (r < 0)
                        return r;
        }
        if (bus_path && strv_push_printf(&env, &n, "RETHINK_BUS=%s", bus_path) < 0)
                return -ENOMEM;
        if (with_credentials) {
                if (!env_has(env, "PATH") && strv_push_printf(&env, &n, "PATH=%s", DEFAULT_PATH) < 0)
                        return -ENOMEM;
                for (size_t k = 0; k < i->spec.n_credentials; k++) {
                        _cleanup_free_ char *name = credential_env_name(i->spec.cred_names[k]);

                        if (!name || strv_push_printf(&env, &n, "%s=%s", name, i->spec.cred_values[k]) < 0)
                                return -ENOMEM;
                }
        }
        if (!env && !(env = calloc(1, sizeof(char *))))
                return -ENOMEM;
        *ret = TAKE_PTR(env);
        return 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        launch_instance *i = userdata;

        instance_exited(i, si->si_code, si->si_status);
        return 0;
}

static int on_kill_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        launch_instance *i = userdata;

        if (i->pid > 0) {
                log_warning("Component %s (instance %s) did not stop within %" PRIu64 " ms of SIGTERM, killing it.",
                            i->spec.name, i->spec.key, i->launcher->stop_timeout / USEC_PER_MSEC);
                (void) kill(i->pid, SIGKILL);
        }
        return 0;
}

static int fork_start(launch_instance *i) {
        launcher *l = i->launcher;
        _cleanup_strv_free_ char **env = NULL;
        _cleanup_free_ char *dir_copy = strdup(i->spec.executable);
        const char *wd;
        pid_t parent = getpid(), pid;
        int r;

        if (!dir_copy)
                return -ENOMEM;
        wd = i->spec.working_directory ?: dirname(dir_copy);
        r = build_env(i, true, i->spec.bus_socket, &env);
        if (r < 0)
                return r;

        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                sigset_t none;
                int null_fd;

                /* The agent blocks the signals it handles with signalfd;
                 * the component must get them the ordinary way. */
                sigemptyset(&none);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                (void) signal(SIGPIPE, SIG_DFL);
                /* Components live no longer than the agent: after a crash
                 * the restarted agent starts them again, never twice. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(EXIT_FAILURE);
                null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null_fd >= 0)
                        (void) dup2(null_fd, STDIN_FILENO);
                (void) close_range(3, ~0U, 0);
                if (chdir(wd) < 0)
                        _exit(200);
                execve(i->spec.executable, (char *[]) { i->spec.executable, NULL }, env);
                _exit(203);
        }
        r = sd_event_add_child(l->event, &i->child, pid, WEXITED, on_child, i);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        i->run = true;
        instance_running(i, pid);
        return 0;
}

/* --- systemd ---------------------------------------------------------------------------------- */

static int systemd_start(launch_instance *i);
static void instance_start_failed(launch_instance *i, int error);

static char *credential_path(launch_instance *i, size_t k) {
        char *p;

        if (asprintf(&p, "%s/%s.%s", i->launcher->credentials_dir, i->unit, i->spec.cred_names[k]) < 0)
                return NULL;
        return p;
}

static void remove_credentials(launch_instance *i) {
        if (!i->launcher || !i->launcher->credentials_dir)
                return;
        for (size_t k = 0; k < i->spec.n_credentials; k++) {
                _cleanup_free_ char *p = credential_path(i, k);

                if (p)
                        (void) unlink(p);
        }
}

static int append_bool(sd_bus_message *m, const char *name, int b) {
        return sd_bus_message_append(m, "(sv)", name, "b", b);
}

static int append_properties(launch_instance *i, sd_bus_message *m) {
        launcher *l = i->launcher;
        _cleanup_strv_free_ char **env = NULL;
        _cleanup_free_ char *dir_copy = strdup(i->spec.executable), *base_copy = strdup(i->spec.executable),
                            *exe = NULL, *description = NULL;
        const char *dir, *wd;
        bool hyperty = i->spec.kind == LAUNCH_HYPERTY;
        int r;

        if (!dir_copy || !base_copy)
                return -ENOMEM;
        dir = dirname(dir_copy);
        if (asprintf(&exe, "%s/%s", LAUNCHER_SANDBOX_EXEC_DIR, basename(base_copy)) < 0 ||
            asprintf(&description, "rethink %s %s (%s)", launch_kind_to_string(i->spec.kind), i->spec.name,
                     i->spec.key) < 0)
                return -ENOMEM;
        /* The component directory is only reachable at its place in the
         * sandbox: the agent's state directory is closed to other users. */
        wd = !i->spec.working_directory || streq(i->spec.working_directory, dir) ? LAUNCHER_SANDBOX_EXEC_DIR
                                                                                   : i->spec.working_directory;
        r = build_env(i, false, i->spec.bus_socket ? LAUNCHER_SANDBOX_BUS : NULL, &env);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(m, 'a', "(sv)");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sv)(sv)(sv)(sv)(sv)", "Description", "s", description, "Slice", "s", l->slice,
                                  "CollectMode", "s", "inactive-or-failed", "Type", "s", "exec", "Restart", "s", "no");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sv)", "ExecStart", "a(sasb)", 1, exe, 1, exe, 0);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sv)(sv)", "WorkingDirectory", "s", wd, "TimeoutStopUSec", "t",
                                  (uint64_t) l->stop_timeout);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(m, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "Environment");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, env);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        /* The token goes as a credential: the environment is for anybody
         * to see in `systemctl show`, and so is SetCredential= over D-Bus.
         * LoadCredential= names a file only root and we can read; PID 1
         * copies it when it starts the unit, and we remove it then. */
        r = sd_bus_message_open_container(m, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "LoadCredential");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "a(ss)");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(ss)");
        for (size_t k = 0; r >= 0 && k < i->spec.n_credentials; k++) {
                _cleanup_free_ char *path = credential_path(i, k);

                if (!path)
                        return -ENOMEM;
                r = write_file_atomic(path, i->spec.cred_values[k], strlen(i->spec.cred_values[k]), 0600);
                if (r < 0)
                        return log_error_errno(r, "Failed to write the credential %s of %s: %m", path, i->unit);
                r = sd_bus_message_append(m, "(ss)", i->spec.cred_names[k], path);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        /* The sandbox. */
        r = append_bool(m, "DynamicUser", 1);
        if (r >= 0)
                r = append_bool(m, "NoNewPrivileges", 1);
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)(sv)", "ProtectSystem", "s", "strict", "ProtectHome", "s", "yes");
        if (r >= 0)
                r = append_bool(m, "PrivateTmp", 1);
        if (r >= 0)
                r = append_bool(m, "PrivateDevices", 1);
        if (r >= 0)
                r = append_bool(m, "ProtectKernelTunables", 1);
        if (r >= 0)
                r = append_bool(m, "ProtectKernelModules", 1);
        if (r >= 0)
                r = append_bool(m, "ProtectControlGroups", 1);
        /* The set of namespace types still allowed: none. */
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)", "RestrictNamespaces", "t", (uint64_t) 0);
        if (r >= 0)
                r = append_bool(m, "LockPersonality", 1);
        if (r >= 0)
                r = append_bool(m, "MemoryDenyWriteExecute", 1);
        if (r >= 0)
                r = append_bool(m, "RestrictRealtime", 1);
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)", "SystemCallArchitectures", "as", 1, "native");
        if (r >= 0)
                r = hyperty ? sd_bus_message_append(m, "(sv)", "RestrictAddressFamilies", "(bas)", 1, 1, "AF_UNIX")
                            : sd_bus_message_append(m, "(sv)", "RestrictAddressFamilies", "(bas)", 1, 3, "AF_UNIX",
                                                    "AF_INET", "AF_INET6");
        if (r >= 0 && hyperty)
                r = append_bool(m, "PrivateNetwork", 1);
        /* A private, read-only tmpfs holds the mount points below: nothing
         * is created in the real file systems. */
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)", "TemporaryFileSystem", "a(ss)", 1, LAUNCHER_SANDBOX_DIR,
                                          "ro,mode=0755");
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)", "BindReadOnlyPaths", "a(ssbt)", 1, dir, LAUNCHER_SANDBOX_EXEC_DIR,
                                          0, (uint64_t) 0);
        if (r >= 0 && i->spec.bus_socket)
                r = sd_bus_message_append(m, "(sv)", "BindPaths", "a(ssbt)", 1, i->spec.bus_socket,
                                          LAUNCHER_SANDBOX_BUS, 0, (uint64_t) 0);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static void instance_start_failed(launch_instance *i, int error) {
        log_error_errno(error, "Component %s (instance %s): cannot start %s: %m", i->spec.name, i->spec.key,
                        i->launcher->mode == LAUNCHER_SYSTEMD ? i->unit : i->spec.executable);
        instance_exited(i, 0, error < 0 ? error : -error);
}

static int on_retry_exists(sd_event_source *s, uint64_t usec, void *userdata) {
        launch_instance *i = userdata;
        int r;

        i->restart_timer = sd_event_source_disable_unref(i->restart_timer);
        if (i->state != I_STARTING)
                return 0;
        r = systemd_start(i);
        if (r < 0)
                instance_start_failed(i, r);
        return 0;
}

static void fire_and_forget(launcher *l, const char *method, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(l->bus, &m, SD_DEST, SD_PATH, SD_MANAGER, method);
        if (r < 0)
                return;
        va_start(ap, types);
        r = sd_bus_message_appendv(m, types, ap);
        va_end(ap);
        if (r >= 0)
                r = sd_bus_call_async(l->bus, NULL, m, NULL, NULL, 0);
        if (r < 0)
                log_debug_errno(r, "launcher: %s failed: %m", method);
}

static int on_start_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        launch_instance *i = userdata;
        launcher *l = i->launcher;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        i->call_slot = sd_bus_slot_unref(i->call_slot);
        log_debug("launcher: StartTransientUnit %s: %s", i->unit, e ? e->name : "queued");
        if (e && i->stop_requested) {
                /* Told to stop while the start was under way: it never ran;
                 * no retry, no fall-back. */
                instance_exited(i, 0, -ECANCELED);
                return 0;
        }
        if (!e) {
                const char *job;

                /* The job runs; JobRemoved says how it ended. systemd
                 * replies before it can finish the job. */
                r = sd_bus_message_read(reply, "o", &job);
                if (r >= 0) {
                        free(i->job);
                        i->job = strdup(job);
                }
                if (r < 0 || !i->job)
                        instance_start_failed(i, r < 0 ? r : -ENOMEM);
                return 0;
        }

        if (sd_bus_error_has_name(e, "org.freedesktop.systemd1.UnitExists") &&
            i->exists_retries++ < UNIT_EXISTS_RETRIES) {
                /* The unit of an earlier run is still loaded: away with it. */
                fire_and_forget(l, "StopUnit", "ss", i->unit, "replace");
                fire_and_forget(l, "ResetFailedUnit", "s", i->unit);
                r = event_reset_time_relative(l->event, &i->restart_timer, UNIT_EXISTS_RETRY_USEC, on_retry_exists, i,
                                              "launcher-exists-retry");
                if (r >= 0)
                        return 0;
        }
        if (l->auto_mode && sd_bus_error_has_names(e, SD_BUS_ERROR_ACCESS_DENIED,
                                                   SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED)) {
                log_warning("systemd refused to start %s (%s): components run with fork/exec from now on "
                            "(see the polkit rule in the documentation of [Components] Launcher=).",
                            i->unit, e->message ?: e->name);
                l->mode = LAUNCHER_FORK;
                i->run = false;
                remove_credentials(i);
                r = fork_start(i);
                if (r < 0)
                        instance_start_failed(i, r);
                return 0;
        }
        if (l->auto_mode && sd_bus_error_has_names(e, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED)) {
                log_warning("Lost the system bus while starting %s: components run with fork/exec from now on.",
                            i->unit);
                l->mode = LAUNCHER_FORK;
                i->run = false;
                r = fork_start(i);
                if (r < 0)
                        instance_start_failed(i, r);
                return 0;
        }
        log_error("Component %s (instance %s): systemd refused to start %s: %s", i->spec.name, i->spec.key, i->unit,
                  e->message ?: e->name);
        instance_exited(i, 0, -sd_bus_error_get_errno(e) ?: -EIO);
        return 0;
}

static int systemd_start(launch_instance *i) {
        launcher *l = i->launcher;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        if (l->cleanup_pending) {
                i->queued = true;
                return 0;
        }
        i->queued = false;
        r = sd_bus_message_new_method_call(l->bus, &m, SD_DEST, SD_PATH, SD_MANAGER, "StartTransientUnit");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", i->unit, "fail");
        if (r < 0)
                return r;
        r = append_properties(i, m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "a(sa(sv))", 0);
        if (r < 0)
                return r;
        i->call_slot = sd_bus_slot_unref(i->call_slot);
        r = sd_bus_call_async(l->bus, &i->call_slot, m, on_start_reply, i, 0);
        if (r < 0)
                return r;
        i->run = true;
        i->job_done = false;
        free(i->job);
        i->job = NULL;
        i->active_state[0] = '\0';
        i->main_code = i->main_status = 0;
        return 0;
}

static bool active_state_is_down(const char *s) {
        return streq(s, "inactive") || streq(s, "failed");
}

/* ExecMainCode/ExecMainStatus as the last signals said; a process systemd
 * never saw exit (the exec failed) is a start failure. */
static void systemd_run_ended(launch_instance *i, const char *why) {
        log_debug("launcher: %s ended (%s; ExecMainCode=%d ExecMainStatus=%d)", i->unit, why, i->main_code,
                  i->main_status);
        if (i->main_code == CLD_EXITED || i->main_code == CLD_KILLED || i->main_code == CLD_DUMPED)
                instance_exited(i, i->main_code, i->main_status);
        else if (i->stop_requested)
                instance_exited(i, CLD_KILLED, SIGTERM);
        else
                instance_exited(i, 0, -EIO);
}

static int read_properties(launch_instance *i, sd_bus_message *m, bool *ret_active_changed, uint32_t *ret_pid) {
        int r;

        *ret_active_changed = false;
        *ret_pid = 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name, *s;
                int32_t n;

                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                if (streq(name, "ActiveState")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0) {
                                snprintf(i->active_state, sizeof(i->active_state), "%s", s);
                                *ret_active_changed = true;
                        }
                } else if (streq(name, "MainPID"))
                        r = sd_bus_message_read(m, "v", "u", ret_pid);
                else if (streq(name, "ExecMainCode")) {
                        r = sd_bus_message_read(m, "v", "i", &n);
                        if (r >= 0)
                                i->main_code = n;
                } else if (streq(name, "ExecMainStatus")) {
                        r = sd_bus_message_read(m, "v", "i", &n);
                        if (r >= 0)
                                i->main_status = n;
                } else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        launch_instance *i = userdata;
        const char *iface;
        bool active_changed;
        uint32_t pid;
        int r;

        if (!i->run)
                return 0;
        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0)
                return 0;
        r = read_properties(i, m, &active_changed, &pid);
        if (r < 0) {
                log_debug_errno(r, "launcher: cannot parse PropertiesChanged of %s: %m", i->unit);
                return 0;
        }
        if (pid > 0 && i->state == I_STARTING)
                instance_running(i, (pid_t) pid);
        else if (pid > 0 && i->state == I_RUNNING)
                i->pid = (pid_t) pid;
        if (active_changed && i->job_done && active_state_is_down(i->active_state))
                systemd_run_ended(i, i->active_state);
        return 0;
}

static int on_active_state_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        launch_instance *i = userdata;
        const char *s = NULL;

        i->query_slot = sd_bus_slot_unref(i->query_slot);
        if (!i->run)
                return 0;
        /* An error means the unit is gone (collected): it ended. */
        if (sd_bus_message_is_method_error(reply, NULL) || sd_bus_message_read(reply, "v", "s", &s) < 0 ||
            active_state_is_down(s))
                systemd_run_ended(i, s ?: "gone");
        return 0;
}

static int on_service_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        launch_instance *i = userdata;
        launcher *l = i->launcher;
        bool active_changed;
        uint32_t pid = 0;
        int r;

        i->query_slot = sd_bus_slot_unref(i->query_slot);
        if (!i->run)
                return 0;
        if (!sd_bus_message_is_method_error(reply, NULL) &&
            read_properties(i, reply, &active_changed, &pid) >= 0 && pid > 0 && i->state == I_STARTING)
                instance_running(i, (pid_t) pid);
        /* Then the current state: the process may have come and gone
         * before we listened. */
        r = sd_bus_call_method_async(l->bus, &i->query_slot, SD_DEST, i->unit_path, "org.freedesktop.DBus.Properties",
                                     "Get", on_active_state_reply, i, "ss", SD_UNIT, "ActiveState");
        if (r < 0)
                log_debug_errno(r, "launcher: cannot ask for the state of %s: %m", i->unit);
        return 0;
}

static launch_instance *find_by_unit(launcher *l, const char *unit) {
        for (launch_instance *i = l->instances; i; i = i->next)
                if (streq(i->unit, unit))
                        return i;
        return NULL;
}

static void cleanup_finished(launcher *l);

static void leftover_remove(launcher *l, const char *unit) {
        for (leftover **p = &l->leftovers; *p; p = &(*p)->next)
                if (streq((*p)->unit, unit)) {
                        leftover *f = *p;

                        *p = f->next;
                        free(f->unit);
                        free(f);
                        break;
                }
        if (l->cleanup_pending && !l->leftovers)
                cleanup_finished(l);
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        launcher *l = userdata;
        const char *job, *unit, *result;
        launch_instance *i;
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "uoss", &id, &job, &unit, &result);
        if (r < 0)
                return 0;
        log_debug("launcher: job %s of %s: %s", job, unit, result);
        if (l->cleanup_pending) {
                leftover_remove(l, unit);
                return 0;
        }
        i = find_by_unit(l, unit);
        /* Only the start job of the current run: a unit of that name may
         * have had other jobs (a leftover's stop, our own stop). */
        if (!i || !i->run || i->job_done || !i->job || !streq(job, i->job))
                return 0;
        if (!streq(result, "done")) {
                /* A failed start, or the start job our stop replaced. */
                if (!i->stop_requested)
                        log_error("Component %s (instance %s): the start job of %s ended with \"%s\".",
                                  i->spec.name, i->spec.key, unit, result);
                systemd_run_ended(i, result);
                return 0;
        }
        i->job_done = true;
        /* Copied by now (the process runs). */
        remove_credentials(i);
        i->query_slot = sd_bus_slot_unref(i->query_slot);
        r = sd_bus_call_method_async(l->bus, &i->query_slot, SD_DEST, i->unit_path, "org.freedesktop.DBus.Properties",
                                     "GetAll", on_service_reply, i, "s", SD_SERVICE);
        if (r < 0)
                log_debug_errno(r, "launcher: cannot ask for the main PID of %s: %m", unit);
        return 0;
}

static void cleanup_finished(launcher *l) {
        l->cleanup_pending = false;
        for (launch_instance *i = l->instances, *next; i; i = next) {
                next = i->next;
                if (i->queued && i->state == I_STARTING) {
                        int r = systemd_start(i);
                        if (r < 0)
                                instance_start_failed(i, r);
                }
        }
}

static int on_list_units_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        launcher *l = userdata;
        const char *name, *load, *active;
        unsigned n = 0;
        int r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                log_debug("launcher: cannot list leftover units: %s", sd_bus_message_get_error(reply)->message);
                cleanup_finished(l);
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssssssouso)", &name, NULL, &load, &active, NULL, NULL,
                                                  NULL, NULL, NULL, NULL)) > 0) {
                leftover *f;

                if (streq(active, "inactive"))
                        continue;
                f = calloc(1, sizeof(*f));
                if (!f || !(f->unit = strdup(name))) {
                        free(f);
                        break;
                }
                f->next = l->leftovers;
                l->leftovers = f;
                n++;
                log_notice("Stopping %s, left over from an earlier run of the agent.", name);
                fire_and_forget(l, "StopUnit", "ss", name, "replace");
        }
        if (!l->leftovers)
                cleanup_finished(l);
        return 0;
}

static int systemd_connect(launcher *l) {
        _cleanup_free_ char *p1 = NULL, *p2 = NULL;
        int r;

        r = sd_bus_open_system(&l->bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(l->bus, l->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = sd_bus_match_signal_async(l->bus, &l->job_removed_slot, SD_DEST, SD_PATH, SD_MANAGER, "JobRemoved",
                                      on_job_removed, NULL, l);
        if (r < 0)
                return r;
        /* Without a subscriber systemd sends no signals. */
        fire_and_forget(l, "Subscribe", "");
        if (asprintf(&p1, "%s-hyperty-*.service", l->unit_prefix) < 0 ||
            asprintf(&p2, "%s-protostub-*.service", l->unit_prefix) < 0)
                return -ENOMEM;
        l->cleanup_pending = true;
        r = sd_bus_call_method_async(l->bus, NULL, SD_DEST, SD_PATH, SD_MANAGER, "ListUnitsByPatterns",
                                     on_list_units_reply, l, "asas", 0, 2, p1, p2);
        if (r < 0)
                return r;
        return 0;
}

/* --- instances ------------------------------------------------------------------------------- */

/* report: a failure goes to instance_exited() (restarts, the exit
 * handler); else it is only returned (the first start, whose caller hears
 * of it). */
static int instance_start_now(launch_instance *i, bool report) {
        launcher *l = i->launcher;
        int r = 0;

        i->state = I_STARTING;
        i->exists_retries = 0;
        if (l->prepare) {
                _cleanup_free_ launch_credential *creds = calloc(i->spec.n_credentials + 1, sizeof(*creds));
                launch_spec view;
                spec_store updated;

                if (!creds)
                        r = -ENOMEM;
                else {
                        spec_store_view(&i->spec, creds, &view);
                        r = l->prepare(i, &view, l->prepare_userdata);
                        if (r >= 0) {
                                /* Identity is the launcher's, not the handler's. */
                                view.name = i->spec.name;
                                view.key = i->spec.key;
                                view.kind = i->spec.kind;
                                r = spec_store_from(&view, &updated);
                                if (r >= 0) {
                                        spec_store_done(&i->spec);
                                        i->spec = updated;
                                }
                        }
                }
        }
        if (r >= 0)
                r = l->mode == LAUNCHER_SYSTEMD ? systemd_start(i) : fork_start(i);
        if (IN_SET_ERRNO(r, -ENOTCONN, -ECONNRESET, -EPIPE) && l->mode == LAUNCHER_SYSTEMD && l->auto_mode) {
                /* The bus went away (or never let us in): auto means
                 * components run anyway. */
                log_warning_errno(r, "The system bus is gone (%m): components run with fork/exec from now on.");
                l->mode = LAUNCHER_FORK;
                i->run = false;
                r = fork_start(i);
        }
        if (r < 0 && report)
                instance_start_failed(i, r);
        return r;
}

static void instance_unlink(launch_instance *i) {
        launcher *l = i->launcher;

        if (!l)
                return;
        if (i->prev)
                i->prev->next = i->next;
        else if (l->instances == i)
                l->instances = i->next;
        if (i->next)
                i->next->prev = i->prev;
        i->prev = i->next = NULL;
}

static void instance_kill(launch_instance *i, bool graceful) {
        launcher *l = i->launcher;

        if (l->mode == LAUNCHER_SYSTEMD && l->bus && i->run) {
                /* A stop is under way: systemd finishes it, with SIGKILL
                 * after TimeoutStopSec= if need be. */
                if (!graceful && i->stop_requested)
                        return;
                if (!graceful)
                        fire_and_forget(l, "KillUnit", "ssi", i->unit, "all", SIGKILL);
                fire_and_forget(l, "StopUnit", "ss", i->unit, "replace");
        } else if (i->pid > 0) {
                (void) kill(i->pid, graceful ? SIGTERM : SIGKILL);
                if (!graceful) {
                        /* Reaped here: the caller wants it gone now. */
                        i->child = sd_event_source_disable_unref(i->child);
                        (void) waitpid(i->pid, NULL, 0);
                }
        }
}

/* Kills what runs (gracefully or not), and cuts the instance loose from
 * the launcher, its event sources and D-Bus calls. */
static void instance_detach(launch_instance *i, bool graceful) {
        instance_kill(i, graceful);
        remove_credentials(i);
        instance_unlink(i);
        i->child = sd_event_source_disable_unref(i->child);
        i->kill_timer = sd_event_source_disable_unref(i->kill_timer);
        i->restart_timer = sd_event_source_disable_unref(i->restart_timer);
        i->props_slot = sd_bus_slot_unref(i->props_slot);
        i->call_slot = sd_bus_slot_unref(i->call_slot);
        i->query_slot = sd_bus_slot_unref(i->query_slot);
        i->launcher = NULL;
}

launch_instance *launch_instance_free(launch_instance *i) {
        if (!i)
                return NULL;
        if (i->launcher)
                instance_detach(i, false);
        backoff_free(i->backoff);
        spec_store_done(&i->spec);
        free(i->exits);
        free(i->unit);
        free(i->unit_path);
        free(i->job);
        free(i);
        return NULL;
}

int launcher_start(launcher *l, const launch_spec *spec, launch_instance **ret) {
        _cleanup_(launch_instance_freep) launch_instance *i = NULL;
        int r;

        if (!l || !ret)
                return -EINVAL;
        r = spec_validate(spec);
        if (r < 0)
                return r;
        for (launch_instance *o = l->instances; o; o = o->next)
                if (streq(o->spec.name, spec->name) && streq(o->spec.key, spec->key ?: "main") &&
                    o->spec.kind == spec->kind)
                        return -EEXIST;

        i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        r = spec_store_from(spec, &i->spec);
        if (r < 0)
                return r;
        r = launcher_unit_name(l->unit_prefix, spec->kind, spec->name, i->spec.key, &i->unit);
        if (r < 0)
                return r;
        /* The unit's id is a short hash of the key, and keys may come from
         * components (a peer's URL): two instances never share a unit. */
        for (launch_instance *o = l->instances; o; o = o->next)
                if (o != i && o->unit && streq(o->unit, i->unit))
                        return -EEXIST;
        r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", i->unit, &i->unit_path);
        if (r < 0)
                return r;
        i->exits = calloc(l->restart_burst + 1, sizeof(usec_t));
        if (!i->exits)
                return -ENOMEM;
        r = backoff_new(&(backoff_config) { .initial = l->restart_initial, .max = l->restart_max }, &i->backoff);
        if (r < 0)
                return r;

        if (l->mode == LAUNCHER_SYSTEMD) {
                /* Listening first: the unit's signals may come before the
                 * reply to the start. */
                r = sd_bus_match_signal_async(l->bus, &i->props_slot, SD_DEST, i->unit_path,
                                              "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                              on_properties_changed, NULL, i);
                if (r < 0)
                        return r;
        }

        i->launcher = l;
        i->next = l->instances;
        if (l->instances)
                l->instances->prev = i;
        l->instances = i;
        r = instance_start_now(i, false);
        if (r < 0)
                return log_error_errno(r, "Component %s (instance %s): cannot start %s: %m", spec->name,
                                       i->spec.key, l->mode == LAUNCHER_SYSTEMD ? i->unit : spec->executable);
        *ret = TAKE_PTR(i);
        return 0;
}

int launcher_stop(launch_instance *i) {
        launcher *l;
        int r;

        if (!i)
                return -EINVAL;
        l = i->launcher;
        i->stop_requested = true;
        i->restart_timer = sd_event_source_disable_unref(i->restart_timer);
        switch (i->state) {
        case I_RESTARTING:
        case I_FAILED:
                i->state = I_STOPPED;
                return 0;
        case I_STOPPED:
                return 0;
        case I_STOPPING:
                return 1;
        default:
                break;
        }
        if (l->mode == LAUNCHER_SYSTEMD && i->run && i->state == I_STARTING && !i->call_slot && !i->job) {
                /* Only a retry (the unit of an earlier run was still there)
                 * was waiting: nothing of this run exists to stop. */
                i->run = false;
                remove_credentials(i);
                i->state = I_STOPPED;
                return 0;
        }
        if (l->mode == LAUNCHER_SYSTEMD && i->run) {
                i->state = I_STOPPING;
                if (i->queued) {
                        i->queued = false;
                        i->run = false;
                        i->state = I_STOPPED;
                        return 0;
                }
                fire_and_forget(l, "StopUnit", "ss", i->unit, "replace");
                return 1;
        }
        if (i->pid <= 0) {
                i->state = I_STOPPED;
                return 0;
        }
        i->state = I_STOPPING;
        (void) kill(i->pid, SIGTERM);
        r = event_reset_time_relative(l->event, &i->kill_timer, l->stop_timeout, on_kill_timer, i, "launcher-kill");
        /* -ESTALE: the loop is finishing (the agent stops); freeing the
         * instance kills what is left. */
        if (r < 0 && r != -ESTALE)
                log_warning_errno(r, "Component %s: cannot arm the stop timeout: %m", i->spec.name);
        return 1;
}

/* --- the launcher ------------------------------------------------------------------------------ */

int launcher_new(sd_event *e, const launcher_options *o, launcher **ret) {
        _cleanup_launcher_ launcher *l = NULL;
        const char *prefix;
        sigset_t mask;
        int r;

        if (!e || !o || !ret || o->mode < 0 || o->mode >= _LAUNCHER_MODE_MAX)
                return -EINVAL;
        prefix = o->unit_prefix ?: "rethink";
        if (!prefix_is_valid(prefix))
                return -EINVAL;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(e);
        l->restart_initial = o->restart_initial_usec ?: USEC_PER_SEC;
        l->restart_max = MAX(o->restart_max_usec ?: 60 * USEC_PER_SEC, l->restart_initial);
        l->restart_burst = o->restart_burst ?: 5;
        l->restart_window = o->restart_window_usec ?: 5 * 60 * USEC_PER_SEC;
        l->stable_after = o->stable_after_usec ?: 30 * USEC_PER_SEC;
        l->stop_timeout = o->stop_timeout_usec ?: 5 * USEC_PER_SEC;
        l->unit_prefix = strdup(prefix);
        if (!l->unit_prefix)
                return -ENOMEM;
        if (o->slice)
                l->slice = strdup(o->slice);
        else if (asprintf(&l->slice, "%s-components.slice", prefix) < 0)
                l->slice = NULL;
        if (!l->slice)
                return -ENOMEM;
        if (o->credentials_dir)
                l->credentials_dir = strdup(o->credentials_dir);
        else if (asprintf(&l->credentials_dir, "%s/credentials", getenv("RUNTIME_DIRECTORY") ?: "/run/rethink") < 0)
                l->credentials_dir = NULL;
        if (!l->credentials_dir || l->credentials_dir[0] != '/')
                return l->credentials_dir ? -EINVAL : -ENOMEM;

        /* sd_event_add_child() needs SIGCHLD blocked; auto may fall back
         * to fork/exec at any time. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();

        l->auto_mode = o->mode == LAUNCHER_AUTO;
        if (o->mode == LAUNCHER_FORK || (l->auto_mode && sd_booted() <= 0)) {
                l->mode = LAUNCHER_FORK;
                log_info("Components run with fork/exec%s.", l->auto_mode ? " (systemd is not the init system)" : "");
        } else {
                r = mkdir_p(l->credentials_dir, 0700);
                if (r < 0)
                        log_warning_errno(r, "Failed to create %s: %m", l->credentials_dir);
                r = systemd_connect(l);
                if (r < 0 && !l->auto_mode)
                        return log_error_errno(r, "Failed to connect to systemd on the system bus: %m");
                if (r < 0) {
                        l->bus = sd_bus_flush_close_unref(l->bus);
                        l->job_removed_slot = NULL;
                        l->cleanup_pending = false;
                        l->mode = LAUNCHER_FORK;
                        log_info_errno(r, "Components run with fork/exec (the system bus does not answer: %m).");
                } else {
                        l->mode = LAUNCHER_SYSTEMD;
                        log_info("Components run as transient systemd units in %s.", l->slice);
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

launcher *launcher_free(launcher *l) {
        if (!l)
                return NULL;
        /* Instances belong to their callers, who should have freed them:
         * stop what is left (they get to say goodbye) and detach it. */
        while (l->instances) {
                launch_instance *i = l->instances;

                instance_detach(i, true);
        }
        while (l->leftovers) {
                leftover *f = l->leftovers;

                l->leftovers = f->next;
                free(f->unit);
                free(f);
        }
        l->job_removed_slot = sd_bus_slot_unref(l->job_removed_slot);
        if (l->bus) {
                (void) sd_bus_flush(l->bus);
                l->bus = sd_bus_close_unref(l->bus);
        }
        sd_event_unref(l->event);
        free(l->unit_prefix);
        free(l->slice);
        free(l->credentials_dir);
        free(l);
        return NULL;
}

launcher_mode launcher_get_mode(const launcher *l) {
        return l ? l->mode : _LAUNCHER_MODE_INVALID;
}

void launcher_set_prepare_handler(launcher *l, launch_prepare_handler_t handler, void *userdata) {
        l->prepare = handler;
        l->prepare_userdata = userdata;
}

void launcher_set_exit_handler(launcher *l, launch_exit_handler_t handler, void *userdata) {
        l->on_exit = handler;
        l->exit_userdata = userdata;
}

void launcher_set_started_handler(launcher *l, launch_started_handler_t handler, void *userdata) {
        l->on_started = handler;
        l->started_userdata = userdata;
}

launcher *launch_instance_get_launcher(const launch_instance *i) {
        return i ? i->launcher : NULL;
}

const char *launch_instance_get_name(const launch_instance *i) {
        return i ? i->spec.name : NULL;
}

const char *launch_instance_get_key(const launch_instance *i) {
        return i ? i->spec.key : NULL;
}

launch_kind launch_instance_get_kind(const launch_instance *i) {
        return i ? i->spec.kind : _LAUNCH_KIND_INVALID;
}

const char *launch_instance_get_unit(const launch_instance *i) {
        return i ? i->unit : NULL;
}

pid_t launch_instance_get_pid(const launch_instance *i) {
        return i ? i->pid : 0;
}

unsigned launch_instance_get_restarts(const launch_instance *i) {
        return i ? i->restarts : 0;
}

const char *launch_instance_get_state(const launch_instance *i) {
        return i ? istate_names[i->state] : NULL;
}

void launch_instance_set_exit_handler(launch_instance *i, launch_exit_handler_t handler, void *userdata) {
        i->on_exit = handler;
        i->exit_userdata = userdata;
}

void launch_instance_set_userdata(launch_instance *i, void *userdata) {
        i->userdata = userdata;
}

void *launch_instance_get_userdata(const launch_instance *i) {
        return i ? i->userdata : NULL;
}
