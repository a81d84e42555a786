/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Structured journal entries of the software manager, each kind with its
 * own MESSAGE_ID (explained in units/rethink.catalog). Fields:
 * COMPONENT, COMPONENT_VERSION, SWM_STATE, SWM_PREV_STATE, SWM_RESULT
 * (the LWM2M result code), SWM_RESULT_TEXT, SWM_REASON, SWM_ACTIVE,
 * SWM_PRINCIPAL (who ordered it; empty for the manager itself), and per
 * kind SWM_BYTES, SWM_PID, SWM_ORDER, SWM_RIGHT. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SWM_MESSAGE_ID_TRANSITION "eaf2bc61d6ba4790acaa4b16191f8299"
#define SWM_MESSAGE_ID_FAILED     "e22780f5272e4162ab204f585250639a"
#define SWM_MESSAGE_ID_DOWNLOAD   "b15dac948e4c4ccb8945e9669d97a2bf"
#define SWM_MESSAGE_ID_CONSENT    "f3a865f91d3549eb8c1f5307ad778562"
#define SWM_MESSAGE_ID_PROCESS    "ba5bf076fce248c4a3add30ec9585061"
#define SWM_MESSAGE_ID_REMOVED    "a752d751fa614214b564b294ab63fee5"
#define SWM_MESSAGE_ID_REFUSED    "796c97f5aaf241e6b84419286b0686e0"
#define SWM_MESSAGE_ID_RECOVERY   "e28983ab0ff14472bce126659bd7622f"

/* A committed transition: info, or warning with its own MESSAGE_ID when
 * result is an error (50-59). */
void swmgr_journal_transition(const char *name, const char *version, const char *prev_state, const char *state,
                              int result, const char *result_text, const char *reason, bool active,
                              const char *principal);
/* A download started/resumed (started) or paused at bytes. */
void swmgr_journal_download(const char *name, const char *version, bool started, uint64_t bytes,
                            const char *why);
void swmgr_journal_consent(const char *name, const char *version, bool accepted, const char *principal);
/* A component process started (started) or was told to stop. */
void swmgr_journal_process(const char *name, const char *version, pid_t pid, bool started);
void swmgr_journal_removed(const char *name, const char *version, const char *principal);
/* An order refused by the ACL, at notice. name NULL: creating. */
void swmgr_journal_refused(const char *principal, const char *order, const char *name, const char *right);
/* At start: a persisted component is being resumed from state. */
void swmgr_journal_recovery(const char *name, const char *version, const char *state);
