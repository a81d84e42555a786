/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The software manager of the Runtime User Agent, after LWM2M Object 9
 * (Software Management): one persistent state machine per component.
 *
 *   INITIAL -> DOWNLOAD_STARTED -> DOWNLOADED -> DELIVERED -> INSTALLING
 *           -> INSTALLED (active or inactive) -> UNINSTALLING -> (gone)
 *
 * DOWNLOADED means the package bytes matched the descriptor's sha256 and
 * the publisher's Ed25519 signature (docs/crypto.md) with a trusted key;
 * DELIVERED means every check passed and the component waits for consent
 * (confirm or cancel). INSTALLING and UNINSTALLING are write-ahead intents:
 * they are committed before the files move, so a restart knows what to
 * finish or roll back. Failures go back to INITIAL with an error result
 * and nothing of the component left on disk but its row.
 *
 * Every order names a principal and is checked against the component's
 * ACL (daemon/acl.h) before anything changes. Creating a component (the
 * install order) is allowed to the local administrator and to the
 * domain's DM server. docs/software-management.md has the whole model:
 * states, results, orders, ACL, persistence and recovery, and the JSON of
 * the control commands. */

#include <jansson.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "gate.h"
#include "macro.h"
#include "time-util.h"

typedef enum swm_state {
        SWM_INITIAL,
        SWM_DOWNLOAD_STARTED,
        SWM_DOWNLOADED,
        SWM_DELIVERED,
        SWM_INSTALLING,
        SWM_INSTALLED,
        SWM_UNINSTALLING,
        _SWM_STATE_MAX,
        _SWM_STATE_INVALID = -EINVAL,
} swm_state;

/* LWM2M Object 9 "Update Result". */
enum {
        SWM_RESULT_INITIAL = 0,
        SWM_RESULT_DOWNLOADING = 1,
        SWM_RESULT_INSTALLED = 2,
        SWM_RESULT_DOWNLOADED = 3,
        SWM_RESULT_STORAGE_FULL = 50,
        SWM_RESULT_OUT_OF_MEMORY = 51,
        SWM_RESULT_CONNECTION_LOST = 52,
        SWM_RESULT_INTEGRITY = 53,
        SWM_RESULT_UNSUPPORTED_PACKAGE = 54,
        SWM_RESULT_INVALID_URI = 56,
        SWM_RESULT_UPDATE_ERROR = 57,
        SWM_RESULT_INSTALL_FAILURE = 58,
        SWM_RESULT_UNINSTALL_FAILURE = 59,
};

const char *swm_state_to_string(swm_state s);
swm_state swm_state_from_string(const char *s);
/* "initial", "downloading", ..., "storage full"; NULL for unknown codes. */
const char *swm_result_to_string(int result);

typedef struct swmgr_options {
        const char *state_dir;          /* required: components.db and software/ live here */
        const char *catalogue_url;      /* base of relative sourcePackageURLs, e.g. "https://10.0.0.1:8443" */
        const char *ca_file;            /* for https package URLs; NULL: the system's */
        const char *runtime_version;    /* NULL: RETHINK_VERSION */
        const char *arch;               /* NULL: uname(2) machine */
        const char *dm_principal;       /* "dm:<domain>"; NULL until the device is registered */
        const char *admin_principal;    /* NULL: "local:uid=0" */
        usec_t retry_initial;           /* download retries, see download.h; 0: defaults */
        usec_t retry_max;
        unsigned retry_attempts;
        usec_t stall_timeout;           /* no byte for this long: retry; 0: 60s */
        /* Runs active components (daemon/launcher.h), borrowed: it must
         * outlive the manager. NULL: a fork/exec launcher of its own. */
        struct launcher *launcher;
} swmgr_options;

/* A transition, after it was committed. principal is who ordered it, NULL
 * when the manager itself moved on (download finished, recovery). */
typedef struct swmgr_event {
        const char *name;
        const char *version;
        swm_state state;
        swm_state prev_state;
        int result;
        const char *reason;
        bool active;
        bool removed;                   /* the component is gone (uninstalled) */
        const char *principal;
} swmgr_event;

/* For reporting to the domain (step 12, 16 of the bootstrap) and tests. It
 * may not call back into the manager. */
typedef void (*swmgr_event_handler_t)(const swmgr_event *ev, void *userdata);

typedef struct swmgr swmgr;

/* Opens the database and the directories; does not act yet (see
 * swmgr_start()). gates may be NULL: downloads then never start. */
int swmgr_new(sd_event *e, gates *g, const swmgr_options *options, swmgr **ret);
/* Stops downloads (partials are kept) and stops running components
 * (launcher_stop()); their "active" stays set, so the next start runs them
 * again. */
swmgr *swmgr_free(swmgr *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(swmgr *, swmgr_free);
#define _cleanup_swmgr_ _cleanup_(swmgr_freep)

/* Trusted publisher keys: name is for people (logs), key is the Ed25519
 * public key as base64url or PEM. */
int swmgr_add_trusted_publisher(swmgr *m, const char *name, const char *key);
/* Every "<name>.pem" (PEM public key) and "<name>.pub" (base64url line) in
 * dir. A missing directory is no error (no publisher is trusted then); a
 * bad file is, naming it in *ret_error. Returns the number of keys. */
int swmgr_load_trusted_publishers(swmgr *m, const char *dir, char **ret_error);
void swmgr_set_event_handler(swmgr *m, swmgr_event_handler_t handler, void *userdata);
/* Set once the device knows its domain (registration). */
int swmgr_set_dm_principal(swmgr *m, const char *principal);
int swmgr_set_catalogue_url(swmgr *m, const char *url);

/* Recovery: every component resumes or rolls back (see the docs), orphan
 * files are removed, active components are started. Then follows the
 * downloads gate. */
int swmgr_start(swmgr *m);

/* Orders. Each returns 0 and, where given, *ret_value the component as
 * JSON (see swmgr_component_json() in the docs), or negative errno with
 * *ret_error (to be freed) for the requester:
 *   -EACCES  the principal lacks the right (403)
 *   -ENOENT  no such component (404)
 *   -EINVAL  malformed order or descriptor (400)
 *   -EBUSY   the component is not in a state that allows it (409)
 *   -EEXIST  a component of that name exists (409)
 * A refused order changes nothing. An accepted install whose checks fail
 * (untrusted publisher, constraints) still returns 0: the component is in
 * INITIAL with the error result, as LWM2M reports it. */
int swmgr_install(swmgr *m, const char *principal, json_t *descriptor, json_t *acl_entries,
                  json_t **ret_value, char **ret_error);
int swmgr_confirm(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error);
int swmgr_cancel(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error);
int swmgr_activate(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error);
int swmgr_deactivate(swmgr *m, const char *principal, const char *name, json_t **ret_value,
                     char **ret_error);
int swmgr_uninstall(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error);
int swmgr_get(swmgr *m, const char *principal, const char *name, json_t **ret_value, char **ret_error);
/* The components principal may read: {"components": [...]}. */
int swmgr_list(swmgr *m, const char *principal, json_t **ret_value);

/* The JSON form of an order, as the domain sends it in a message body and
 * the control socket's install command carries it:
 *   {"order": "install", "descriptor": {...}, "acl": {"P": "rwxd"}}
 *   {"order": "confirm|cancel|activate|deactivate|uninstall|read", "name": N} */
int swmgr_order(swmgr *m, const char *principal, json_t *order, json_t **ret_value, char **ret_error);
/* The same order in a reTHINK message (lib/message.h), as the domain's DM
 * server sends it: body.value is the order (absent in a read: the list).
 * Types execute, create, read, delete. The response is 200 (201 for
 * create) with the component as value, or the error's status with a
 * description. Returns negative errno only when no response can be built. */
typedef struct rt_message rt_message;
int swmgr_handle_message(swmgr *m, const char *principal, const rt_message *request, rt_message **ret);

/* The status code (HTTP semantics) for an order's error. */
int swmgr_error_to_status(int error);

/* Introspection for tests and the control socket. */
int swmgr_get_state(swmgr *m, const char *name, swm_state *ret_state, int *ret_result);
pid_t swmgr_get_pid(swmgr *m, const char *name);
/* The installed executable of an INSTALLED component (to be freed), and
 * whether it is a protocol stub; -ENOENT otherwise. */
int swmgr_get_executable(swmgr *m, const char *name, char **ret_path, bool *ret_protostub);
const char *swmgr_get_state_dir(swmgr *m);
