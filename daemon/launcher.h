/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The component launcher: runs component instances (hyperties and
 * protostubs) and keeps them running.
 *
 * Under systemd each instance is a transient service started over sd-bus
 * (rethink-<kind>-<name>-<id>.service, in rethink-components.slice) with a
 * dynamic user and a sandbox; without systemd it is a child process
 * (fork/exec). Either way the launcher owns the restart policy: an
 * instance that exits without being told to is started again after a
 * jittered exponential backoff (lib/backoff.h), the backoff starts over
 * after a run of stable_after, and after restart_burst exits within
 * restart_window the launcher gives up and says so to the exit handler.
 * A stop that was asked for (launcher_stop()) is never followed by a
 * restart. docs/components.md has the sandbox, the unit properties and
 * how to inspect the units with systemctl.
 *
 * Every D-Bus call is asynchronous on the event loop: nothing here waits
 * for systemd. Several instances of one component may run at the same
 * time as long as their keys differ. */

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "time-util.h"

typedef enum launcher_mode {
        LAUNCHER_AUTO,          /* systemd when booted with it and the system bus answers, else fork */
        LAUNCHER_SYSTEMD,
        LAUNCHER_FORK,
        _LAUNCHER_MODE_MAX,
        _LAUNCHER_MODE_INVALID = -EINVAL,
} launcher_mode;

const char *launcher_mode_to_string(launcher_mode m);
launcher_mode launcher_mode_from_string(const char *s);

typedef enum launch_kind {
        LAUNCH_HYPERTY,         /* no network: only the bus socket */
        LAUNCH_PROTOSTUB,       /* network */
        _LAUNCH_KIND_MAX,
        _LAUNCH_KIND_INVALID = -EINVAL,
} launch_kind;

const char *launch_kind_to_string(launch_kind k);
launch_kind launch_kind_from_string(const char *s);

typedef struct launcher_options {
        launcher_mode mode;
        usec_t restart_initial_usec;    /* first restart delay; 0: 1 s */
        usec_t restart_max_usec;        /* longest restart delay; 0: 60 s; raised to initial if below */
        unsigned restart_burst;         /* give up after this many exits within restart_window; 0: 5 */
        usec_t restart_window_usec;     /* 0: 5 min */
        usec_t stable_after_usec;       /* a run this long forgets earlier exits; 0: 30 s */
        usec_t stop_timeout_usec;       /* SIGTERM, then SIGKILL after this; 0: 5 s */
        const char *unit_prefix;        /* NULL: "rethink" */
        const char *slice;              /* NULL: "<unit_prefix>-components.slice" */
        /* systemd mode: where credentials wait for PID 1 (LoadCredential=),
         * created 0700. NULL: $RUNTIME_DIRECTORY/credentials, or
         * /run/rethink/credentials. */
        const char *credentials_dir;
} launcher_options;

typedef struct launch_credential {
        const char *name;               /* [A-Za-z0-9_.-]+, e.g. "rethink-bus-token" */
        const char *value;
} launch_credential;

/* What to run. The launcher copies it; nothing needs to outlive the call. */
typedef struct launch_spec {
        const char *name;               /* component name, [A-Za-z0-9._-], at most 64 */
        const char *key;                /* instance key; NULL: "main" */
        launch_kind kind;
        const char *executable;         /* absolute path */
        const char *working_directory;  /* NULL: the executable's directory */
        char **environment;             /* "NAME=value" strv, may be NULL */
        const launch_credential *credentials;
        size_t n_credentials;
        /* The agent's bus socket (docs/bus.md), may be NULL. The launcher
         * makes it reachable and sets RETHINK_BUS to where the instance
         * sees it: the same path with fork/exec, a fixed path inside the
         * unit's mount namespace under systemd. */
        const char *bus_socket;
} launch_spec;

/* Under systemd, where the instance sees its component directory (the
 * executable's directory, read-only) and the bus socket. */
#define LAUNCHER_SANDBOX_DIR "/run/rethink-component"
#define LAUNCHER_SANDBOX_EXEC_DIR LAUNCHER_SANDBOX_DIR "/exec"
#define LAUNCHER_SANDBOX_BUS LAUNCHER_SANDBOX_DIR "/bus.sock"

typedef struct launch_exit {
        int code;                       /* CLD_EXITED, CLD_KILLED, CLD_DUMPED; 0: it never ran (start failed) */
        int status;                     /* exit status or signal number; a negative errno when it never ran */
        bool will_restart;
        bool gave_up;                   /* restart_burst exits within restart_window: no more restarts */
        bool stopped;                   /* launcher_stop() asked for it */
        unsigned restarts;              /* restarts so far */
        usec_t restart_usec;            /* when will_restart: the delay */
} launch_exit;

typedef struct launcher launcher;
typedef struct launch_instance launch_instance;

/* Called before every start and restart (also the first, inside
 * launcher_start(), before *ret is set: tell the instance by its name, key
 * and kind) with a copy of the spec the instance was started with, or that
 * the previous call left. The handler may change everything but name, key
 * and kind: environment, credentials (a fresh bus token per process),
 * bus_socket. Pointers it stores must stay valid until it returns; the
 * launcher copies them. A negative return fails that start (the first:
 * launcher_start() returns it; later ones count like an exit). */
typedef int (*launch_prepare_handler_t)(launch_instance *i, launch_spec *spec, void *userdata);
/* Called when a process of an instance is gone, and when a start failed.
 * The launcher's handler must not free the instance (its owner's handler,
 * launch_instance_set_exit_handler(), runs after it and may). */
typedef void (*launch_exit_handler_t)(launch_instance *i, const launch_exit *e, void *userdata);
/* Called when an instance is running (a PID is known). Optional. */
typedef void (*launch_started_handler_t)(launch_instance *i, pid_t pid, void *userdata);

/* Says once in the log which mode it runs in. */
int launcher_new(sd_event *e, const launcher_options *options, launcher **ret);
/* Instances still running are stopped: fork mode sends SIGTERM (they also
 * die with the agent, PR_SET_PDEATHSIG), systemd mode queues StopUnit and
 * flushes the bus. */
launcher *launcher_free(launcher *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(launcher *, launcher_free);
#define _cleanup_launcher_ _cleanup_(launcher_freep)

/* LAUNCHER_SYSTEMD or LAUNCHER_FORK; auto resolves in launcher_new(). It
 * may fall back from systemd to fork later in auto mode, when systemd
 * refuses to start units for us (no polkit rule): said once in the log. */
launcher_mode launcher_get_mode(const launcher *l);
void launcher_set_prepare_handler(launcher *l, launch_prepare_handler_t handler, void *userdata);
void launcher_set_exit_handler(launcher *l, launch_exit_handler_t handler, void *userdata);
void launcher_set_started_handler(launcher *l, launch_started_handler_t handler, void *userdata);

/* Starts an instance. -EEXIST when (name, key) is already an instance;
 * -EINVAL for a bad spec. The start itself is asynchronous under systemd:
 * its failure comes to the exit handler. *ret stays valid until
 * launch_instance_free(). */
int launcher_start(launcher *l, const launch_spec *spec, launch_instance **ret);
/* A deliberate stop: SIGTERM and SIGKILL after stop_timeout (StopUnit under
 * systemd), never restarted. The exit handler says when it is gone. */
int launcher_stop(launch_instance *i);
/* Forgets the instance; a process still running is killed (SIGKILL, and
 * reaped here with fork/exec; KillUnit+StopUnit under systemd, where a
 * launcher_stop() under way is left to finish on its own). No handler is
 * called for it afterwards. */
launch_instance *launch_instance_free(launch_instance *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(launch_instance *, launch_instance_free);

launcher *launch_instance_get_launcher(const launch_instance *i);
const char *launch_instance_get_name(const launch_instance *i);
const char *launch_instance_get_key(const launch_instance *i);
launch_kind launch_instance_get_kind(const launch_instance *i);
/* The unit name (also computed with fork/exec, where it names the instance
 * in logs). */
const char *launch_instance_get_unit(const launch_instance *i);
/* 0 while not running. */
pid_t launch_instance_get_pid(const launch_instance *i);
unsigned launch_instance_get_restarts(const launch_instance *i);
/* "starting", "running", "stopping", "restarting" (waiting for the
 * backoff), "stopped", "failed" (gave up). */
const char *launch_instance_get_state(const launch_instance *i);
/* The owner's handler for this instance: called after the launcher's (which
 * sees every instance, e.g. to revoke its bus token) and may free i. */
void launch_instance_set_exit_handler(launch_instance *i, launch_exit_handler_t handler, void *userdata);
void launch_instance_set_userdata(launch_instance *i, void *userdata);
void *launch_instance_get_userdata(const launch_instance *i);

/* The unit name for (prefix, kind, name, key): <prefix>-<kind>-<name>-<id>.service
 * where id is the first 8 hex digits of SHA-256(key). */
int launcher_unit_name(const char *prefix, launch_kind kind, const char *name, const char *key, char **ret);
