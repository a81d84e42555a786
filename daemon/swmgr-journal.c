/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "log.h"
#include "swmgr-journal.h"

#define COMPONENT_FIELDS(name, version)                          \
        LOG_FIELD("COMPONENT", "%s", (name) ?: ""),              \
        LOG_FIELD("COMPONENT_VERSION", "%s", (version) ?: "")

void swmgr_journal_transition(const char *name, const char *version, const char *prev_state, const char *state,
                              int result, const char *result_text, const char *reason, bool active,
                              const char *principal) {
        bool failed = result >= 50;

        log_struct(failed ? LOG_WARNING : LOG_INFO,
                   LOG_MESSAGE("Component %s %s: %s -> %s%s, result %d (%s)%s%s.", strna(name), strna(version),
                               strna(prev_state), strna(state), active ? " (active)" : "", result,
                               strna(result_text), reason ? ": " : "", reason ?: ""),
                   LOG_MESSAGE_ID(failed ? SWM_MESSAGE_ID_FAILED : SWM_MESSAGE_ID_TRANSITION),
                   COMPONENT_FIELDS(name, version),
                   LOG_FIELD("SWM_STATE", "%s", strna(state)),
                   LOG_FIELD("SWM_PREV_STATE", "%s", strna(prev_state)),
                   LOG_FIELD("SWM_RESULT", "%d", result),
                   LOG_FIELD("SWM_RESULT_TEXT", "%s", strna(result_text)),
                   LOG_FIELD("SWM_REASON", "%s", reason ?: ""),
                   LOG_FIELD("SWM_ACTIVE", "%s", active ? "yes" : "no"),
                   LOG_FIELD("SWM_PRINCIPAL", "%s", principal ?: ""));
}

void swmgr_journal_download(const char *name, const char *version, bool started, uint64_t bytes,
                            const char *why) {
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Component %s: download %s at byte %" PRIu64 " (%s).", strna(name),
                               started ? (bytes > 0 ? "resumed" : "started") : "paused", bytes, strna(why)),
                   LOG_MESSAGE_ID(SWM_MESSAGE_ID_DOWNLOAD),
                   COMPONENT_FIELDS(name, version),
                   LOG_FIELD("SWM_DOWNLOAD", "%s", started ? "running" : "paused"),
                   LOG_FIELD("SWM_BYTES", "%" PRIu64, bytes),
                   LOG_FIELD("SWM_REASON", "%s", why ?: ""));
}

void swmgr_journal_consent(const char *name, const char *version, bool accepted, const char *principal) {
        log_struct(LOG_NOTICE,
                   LOG_MESSAGE("Component %s %s: installation %s by %s.", strna(name), strna(version),
                               accepted ? "accepted" : "rejected", strna(principal)),
                   LOG_MESSAGE_ID(SWM_MESSAGE_ID_CONSENT),
                   COMPONENT_FIELDS(name, version),
                   LOG_FIELD("SWM_CONSENT", "%s", accepted ? "accepted" : "rejected"),
                   LOG_FIELD("SWM_PRINCIPAL", "%s", principal ?: ""));
}

void swmgr_journal_process(const char *name, const char *version, pid_t pid, bool started) {
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Component %s: process %d %s.", strna(name), (int) pid,
                               started ? "started" : "told to stop"),
                   LOG_MESSAGE_ID(SWM_MESSAGE_ID_PROCESS),
                   COMPONENT_FIELDS(name, version),
                   LOG_FIELD("SWM_PID", "%d", (int) pid),
                   LOG_FIELD("SWM_PROCESS", "%s", started ? "started" : "stopping"));
}

void swmgr_journal_removed(const char *name, const char *version, const char *principal) {
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Component %s %s removed.", strna(name), strna(version)),
                   LOG_MESSAGE_ID(SWM_MESSAGE_ID_REMOVED),
                   COMPONENT_FIELDS(name, version),
                   LOG_FIELD("SWM_PRINCIPAL", "%s", principal ?: ""));
}

void swmgr_journal_refused(const char *principal, const char *order, const char *name, const char *right) {
        log_struct(LOG_NOTICE,
                   LOG_MESSAGE("Refused %s of %s to %s: no %s right.", strna(order), name ?: "a new component",
                               strna(principal), strna(right)),
                   LOG_MESSAGE_ID(SWM_MESSAGE_ID_REFUSED),
                   COMPONENT_FIELDS(name, NULL),
                   LOG_FIELD("SWM_ORDER", "%s", strna(order)),
                   LOG_FIELD("SWM_RIGHT", "%s", strna(right)),
                   LOG_FIELD("SWM_PRINCIPAL", "%s", principal ?: ""));
}

void swmgr_journal_recovery(const char *name, const char *version, const char *state) {
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Component %s %s: recovering from state %s.", strna(name), strna(version),
                               strna(state)),
                   LOG_MESSAGE_ID(SWM_MESSAGE_ID_RECOVERY),
                   COMPONENT_FIELDS(name, version),
                   LOG_FIELD("SWM_STATE", "%s", strna(state)));
}
