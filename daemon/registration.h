/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Registration of the device with the domain's device management
 * (docs/registration.md): one state machine on sd-event and lib/h2-client.
 *
 *   register    POST /dm/rd?ep=<endpoint>&lt=<lifetime> with publicKey,
 *               runtimeVersion, arch, freeBytes; 201/200 + Location
 *   keep-alive  POST <Location> at about 2/3 of the lifetime (jittered
 *               down to 1/2, so a fleet does not refresh in lockstep)
 *   update      POST <Location> at once when the primary interface or
 *               address changes (the gate's mobility event)
 *   404         the domain forgot us (expired, de-registered, wiped):
 *               register again at once
 *
 * It runs only while the `registration` gate is open. Closing the gate
 * cancels what is in flight and stops every timer: no attempt while the
 * device is offline. Opening it registers at once with a fresh backoff.
 * Every failure (connection, timeout, 5xx, 429, an unexpected answer) is
 * retried after lib/backoff's jittered exponential delay, at least the
 * server's Retry-After. Each step is a journal entry with its own
 * MESSAGE_ID (units/rethink.catalog). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "gate.h"
#include "identity.h"
#include "macro.h"
#include "time-util.h"

#define REGISTRATION_MESSAGE_ID_ATTEMPT    "75396906fa7443fcbeb75714a147e9aa"
#define REGISTRATION_MESSAGE_ID_REGISTERED "c0f645c70a5841a78d906315b0c2c250"
#define REGISTRATION_MESSAGE_ID_UPDATED    "aac165701b9a49ad88131c34c23b29fb"
#define REGISTRATION_MESSAGE_ID_FAILED     "9b33030fa90f4d62b264c3a64f59f465"
#define REGISTRATION_MESSAGE_ID_LOST       "b414fa33b58d493f87bfea07a689947b"
#define REGISTRATION_MESSAGE_ID_SUSPENDED  "29fde05e310a4901b3fdb617dad411d6"

#define REGISTRATION_LIFETIME_DEFAULT_SEC 3600u
#define REGISTRATION_RETRY_INITIAL_USEC (2 * USEC_PER_SEC)
#define REGISTRATION_RETRY_MAX_USEC (10 * USEC_PER_MINUTE)
/* A Retry-After beyond this is the server's mistake, not a plan. */
#define REGISTRATION_RETRY_AFTER_MAX_USEC (1 * USEC_PER_HOUR)

/* The domain's address, from [Domain] URL=: "https://host[:port]" (port
 * 443 by default), or "http://host[:port]" (80) for h2c, which only a
 * loopback host may use. host is a numeric IPv4 address, a bracketed
 * IPv6 address or "localhost" (lib/h2-client resolves no names). No path,
 * query, user or fragment. On -EINVAL *ret_reason (static) says why. */
typedef struct registration_url {
        char host[64];
        uint16_t port;
        bool tls;
} registration_url;

int registration_url_parse(const char *url, registration_url *ret, const char **ret_reason);

typedef struct registration_options {
        const char *url;               /* required */
        const char *ca_file;           /* https: the CA to verify the domain with; required */
        unsigned lifetime_sec;         /* 0: REGISTRATION_LIFETIME_DEFAULT_SEC */
        const char *runtime_version;   /* NULL: RETHINK_VERSION */
        const char *arch;              /* NULL: uname's machine */
        const char *storage_path;      /* freeBytes from statvfs() of it; NULL: not sent */
        usec_t retry_initial_usec;     /* 0: REGISTRATION_RETRY_INITIAL_USEC */
        usec_t retry_max_usec;         /* 0: REGISTRATION_RETRY_MAX_USEC */
        usec_t request_timeout_usec;   /* 0: 30 s */
        backoff_random_t random;       /* tests: deterministic jitter; NULL: OpenSSL */
        void *random_userdata;
} registration_options;

typedef enum registration_state {
        REGISTRATION_SUSPENDED,        /* the gate is closed */
        REGISTRATION_REGISTERING,      /* register request in flight */
        REGISTRATION_REGISTERED,       /* waiting for the keep-alive */
        REGISTRATION_UPDATING,         /* update request in flight */
        REGISTRATION_RETRY_WAIT,       /* a failure, waiting for the backoff */
        _REGISTRATION_STATE_MAX,
        _REGISTRATION_STATE_INVALID = -EINVAL,
} registration_state;

const char *registration_state_to_string(registration_state s);

typedef enum registration_event_type {
        REGISTRATION_EVENT_ATTEMPT,    /* a request goes out */
        REGISTRATION_EVENT_REGISTERED, /* 201 or 200 with a Location */
        REGISTRATION_EVENT_UPDATED,    /* 204 to an update */
        REGISTRATION_EVENT_FAILED,     /* retry after .delay */
        REGISTRATION_EVENT_LOST,       /* 404 to an update: registering again */
        REGISTRATION_EVENT_SUSPENDED,  /* the gate closed */
        _REGISTRATION_EVENT_TYPE_MAX,
} registration_event_type;

typedef struct registration_event {
        registration_event_type type;
        bool update;           /* the request is an update (POST <Location>), not a register */
        const char *reason;    /* why the request: "start", "gate-open", "keep-alive",
                                * "mobility", "not-found", "retry" */
        int status;            /* HTTP status; 0 without an answer */
        int error;             /* negative errno of a transport failure, else 0 */
        usec_t delay;          /* FAILED: until the retry; REGISTERED/UPDATED: until the keep-alive */
        usec_t retry_after;    /* the server's Retry-After, 0 if none */
} registration_event;

/* Tests and the agent's status follow the steps with this. */
typedef void (*registration_event_handler_t)(const registration_event *ev, void *userdata);

typedef struct registration registration;

/* Subscribes to the registration gate and the mobility event of g; does
 * nothing before registration_start(). Borrows id and g, which must
 * outlive it. */
int registration_new(sd_event *e, identity *id, gates *g, const registration_options *options,
                     registration **ret);
registration *registration_free(registration *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(registration *, registration_free);
#define _cleanup_registration_ _cleanup_(registration_freep)

void registration_set_event_handler(registration *r, registration_event_handler_t handler, void *userdata);

/* Registers at once if the gate is open, else when it opens. */
int registration_start(registration *r);

registration_state registration_get_state(const registration *r);
/* The Location of the registration ("/dm/rd/<id>"), NULL before the first. */
const char *registration_get_location(const registration *r);
unsigned registration_get_lifetime(const registration *r);
/* Requests sent since the start. */
unsigned registration_get_attempts(const registration *r);

/* {"state", "domain", "endpoint", "location", "lifetime", "attempts",
 *  "last_error", "registered_usec" (CLOCK_REALTIME of the last success, 0
 *  if none), "next_usec" (CLOCK_REALTIME of the next request, 0 if none)}. */
json_t *registration_status_json(const registration *r);
