/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device runtime's session with the domain's Messaging Service, the
 * long-lived stream on which the domain's orders arrive
 * (docs/registration.md):
 *
 *   token    POST /idm/token, client_credentials with an RFC 7523 client
 *            assertion signed by the device's P-256 key (scope "runtime");
 *            renewed at 3/4 of its lifetime
 *   session  POST /msg/sessions {"runtime": "runtime://<domain>/<uuid>"}
 *   stream   GET /msg/sessions/<id>/stream: NDJSON, each line parsed into
 *            an rt_message and handed to the message handler
 *
 * A stream that ends, a connection that is lost, a refused token (e.g. the
 * device is not claimed yet) are retried after lib/backoff's delays. Like
 * registration it runs only while the `registration` gate is open and
 * reconnects at once on the mobility event. The runtime's UUID is created
 * once and kept in <state_dir>/runtime-id. */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "gate.h"
#include "identity.h"
#include "macro.h"
#include "message.h"
#include "registration.h"

#define REG_SESSION_RUNTIME_ID_FILE "runtime-id"
#define REG_SESSION_MESSAGE_ID_TOKEN   "f8ffc701e51a4ec592fa590e1bb125e8"
#define REG_SESSION_MESSAGE_ID_OPENED  "f7bb7730518a4e678d0c8387eb44b059"
#define REG_SESSION_MESSAGE_ID_FAILED  "99ff175166bb4fe09f76604088a399c7"

typedef struct reg_session_options {
        const char *url;              /* as for registration */
        const char *ca_file;
        const char *domain_name;      /* runtime://<domain_name>/..., token audience */
        const char *state_dir;        /* for runtime-id */
        usec_t retry_initial_usec;    /* 0: REGISTRATION_RETRY_INITIAL_USEC */
        usec_t retry_max_usec;        /* 0: REGISTRATION_RETRY_MAX_USEC */
        backoff_random_t random;      /* tests */
        void *random_userdata;
} reg_session_options;

typedef enum reg_session_state {
        REG_SESSION_IDLE,             /* not started, or the gate is closed */
        REG_SESSION_TOKEN,            /* asking the IdM */
        REG_SESSION_OPENING,          /* POST /msg/sessions */
        REG_SESSION_STREAMING,        /* the stream is attached */
        REG_SESSION_RETRY_WAIT,
        _REG_SESSION_STATE_MAX,
        _REG_SESSION_STATE_INVALID = -EINVAL,
} reg_session_state;

const char *reg_session_state_to_string(reg_session_state s);

/* A name that makes valid addresses: runtime://<name>/<uuid> (lowercase
 * DNS name or IP literal, lib/address.h). */
bool reg_session_domain_name_is_valid(const char *name);

typedef struct reg_session reg_session;

/* Called for every message the domain sends; borrowed for the call. */
typedef void (*reg_session_message_handler_t)(const rt_message *m, void *userdata);
/* Tests follow the states with this. */
typedef void (*reg_session_state_handler_t)(reg_session_state state, int status, void *userdata);

int reg_session_new(sd_event *e, identity *id, gates *g, const reg_session_options *options, reg_session **ret);
reg_session *reg_session_free(reg_session *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(reg_session *, reg_session_free);
#define _cleanup_reg_session_ _cleanup_(reg_session_freep)

void reg_session_set_message_handler(reg_session *s, reg_session_message_handler_t handler, void *userdata);
void reg_session_set_state_handler(reg_session *s, reg_session_state_handler_t handler, void *userdata);

/* Starts (when the gate is open) once the device is registered; again a
 * no-op while running. */
int reg_session_start(reg_session *s);

/* Posts m to the domain on the session (POST /msg/sessions/<id>/messages)
 * without waiting: a refusal or a loss is logged, not reported. -ENOTCONN
 * while the stream is not attached or without a valid token. */
int reg_session_send(reg_session *s, const rt_message *m);

reg_session_state reg_session_get_state(const reg_session *s);
/* runtime://<domain>/<uuid> */
const char *reg_session_get_runtime(const reg_session *s);
/* NULL without a valid token. */
const char *reg_session_get_token(const reg_session *s);
/* When it expires (CLOCK_MONOTONIC); 0 without a valid token. */
usec_t reg_session_get_token_expiry(const reg_session *s);
unsigned reg_session_get_messages(const reg_session *s);
json_t *reg_session_status_json(const reg_session *s);
