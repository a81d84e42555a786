/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libhyperty: the C SDK for rethink components (hyperties and protostubs).
 * A component links it, creates one hyperty object on its sd-event loop
 * and talks the runtime message bus of docs/bus.md through it:
 *
 *   hyperty_new()        reads the environment the agent sets (RETHINK_BUS,
 *                        RETHINK_ADDRESS, the bus token, ...)
 *   hyperty_connect()    connects and says hello; the ready handler runs
 *                        once the agent answered (again after a reconnect)
 *   hyperty_send()       any message; a response handler gets the answer
 *                        (or a 408 made up locally after the timeout)
 *   hyperty_register()   announces resources for the Global Registry and
 *                        the Local M2M Resource Directory
 *   hyperty_publish()    a SenML value of one of its resources
 *   hyperty_subscribe(), hyperty_read(), hyperty_update()
 *                        context resources, through the domain (via NULL)
 *                        or through a p2p protostub (via its address)
 *   hyperty_discover()   Global Registry queries
 *   hyperty_load_protostub()
 *
 * Like lib/, it never logs above debug and never exits: the component
 * decides. A lost bus connection is retried with lib/backoff's delays. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "message.h"

/* Default time a request waits for its response. */
#define HYPERTY_REQUEST_TIMEOUT_USEC (30ULL * 1000000ULL)
/* Bytes of output queued while the runtime does not read; past it sending
 * fails with -ENOBUFS (the bus server's own bound is the same, docs/bus.md). */
#define HYPERTY_OUTPUT_MAX (1024u * 1024u)

typedef struct hyperty hyperty;

typedef struct hyperty_options {
        const char *bus_path;           /* NULL: $RETHINK_BUS */
        const char *address;            /* NULL: $RETHINK_ADDRESS */
        const char *runtime;            /* NULL: $RETHINK_RUNTIME */
        const char *token;              /* NULL: $CREDENTIALS_DIRECTORY/rethink-bus-token, else $RETHINK_BUS_TOKEN */
        uint64_t request_timeout_usec;  /* 0: HYPERTY_REQUEST_TIMEOUT_USEC */
        uint64_t reconnect_initial_usec; /* 0: 250 ms; first delay before reconnecting */
        uint64_t reconnect_max_usec;    /* 0: 30 s; the delays grow (lib/backoff) up to this */
} hyperty_options;

/* A message that is not a response to one of ours. The handler may answer
 * with hyperty_reply(). Borrowed for the call. */
typedef void (*hyperty_message_handler_t)(hyperty *h, const rt_message *m, void *userdata);
/* The response to a request, or a local one (code 408 timeout, 503 bus
 * lost) when none came. Borrowed for the call. */
typedef void (*hyperty_response_handler_t)(hyperty *h, const rt_message *response, void *userdata);
/* "online", "degraded" or "offline", from the hello and every change. */
typedef void (*hyperty_connectivity_handler_t)(hyperty *h, const char *state, void *userdata);
/* connected: the hello was answered (true) or the connection was lost
 * (false; the SDK reconnects by itself). */
typedef void (*hyperty_state_handler_t)(hyperty *h, bool connected, void *userdata);

/* The default event loop of a component's main(), which ends (the loop
 * returns 0) on SIGTERM, as systemd and the fork/exec launcher stop
 * components, and on SIGINT. Blocks both signals for signalfd. */
int hyperty_event_new(sd_event **ret);

/* options may be NULL (all from the environment). -EINVAL with a missing
 * or invalid variable, named at debug level. */
int hyperty_new(sd_event *e, const hyperty_options *options, hyperty **ret);
hyperty *hyperty_free(hyperty *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(hyperty *, hyperty_free);
#define _cleanup_hyperty_ _cleanup_(hyperty_freep)

void hyperty_set_message_handler(hyperty *h, hyperty_message_handler_t handler, void *userdata);
void hyperty_set_connectivity_handler(hyperty *h, hyperty_connectivity_handler_t handler, void *userdata);
void hyperty_set_state_handler(hyperty *h, hyperty_state_handler_t handler, void *userdata);

/* The component's configuration: $RETHINK_COMPONENT_CONFIGURATION parsed
 * (a new reference), an empty object when it is unset. -EINVAL when it is
 * not a JSON object (duplicate keys refused). */
int hyperty_get_configuration(json_t **ret);

/* Starts connecting; returns at once. Connecting again while connected or
 * connecting does nothing. hyperty_free() may be called from inside any
 * handler; no handler is called after it. */
int hyperty_connect(hyperty *h);
bool hyperty_is_connected(const hyperty *h);

const char *hyperty_get_address(const hyperty *h);
const char *hyperty_get_runtime(const hyperty *h);
/* From the hello answer; NULL before it. */
const char *hyperty_get_domain(const hyperty *h);
const char *hyperty_get_connectivity(const hyperty *h);
/* Requests waiting for their response. */
size_t hyperty_get_n_pending(const hyperty *h);

/* Sends a message from the instance's own address (from may be given by
 * protostubs relaying for others; NULL otherwise). body is borrowed. With
 * a response handler the request is tracked until its response or the
 * timeout. *ret_id, when given, gets the message id. -ENOTCONN when the
 * bus is not connected (nothing is queued: the caller decides). */
int hyperty_send(hyperty *h, rt_message_type type, const char *from, const char *to, json_t *body,
                 hyperty_response_handler_t handler, void *userdata, uint64_t *ret_id);
/* Sends a ready-made message as it is (protostubs relaying). */
int hyperty_send_message(hyperty *h, const rt_message *m);
/* Answers request with code, description (NULL: none) and value (NULL:
 * none, borrowed), from the instance's own address: the bus takes no other
 * from a hyperty, even for a request to one of its ctxt:// resources; the
 * requester correlates by id. */
int hyperty_reply(hyperty *h, const rt_message *request, int code, const char *description, json_t *value);

/* The context address of one of the instance's resources:
 * ctxt://<domain>/<uuid>/<name>. To be freed. */
char *hyperty_resource_address(const hyperty *h, const char *name);

/* create to the runtime, body {"attribute": "registration", "value":
 * registration} (docs/bus.md). */
int hyperty_register(hyperty *h, json_t *registration, hyperty_response_handler_t handler, void *userdata);
/* update to hyperty_resource_address(name) with body.resource and
 * body.value = senml (checked with lib/senml: -EINVAL); fire and forget. */
int hyperty_publish(hyperty *h, const char *name, json_t *senml);
/* via NULL: the domain's subscription manager
 * (domain://msg-node.<domain of resource>/sm); else a p2p protostub. */
int hyperty_subscribe(hyperty *h, const char *via, const char *resource, hyperty_response_handler_t handler,
                      void *userdata);
int hyperty_unsubscribe(hyperty *h, const char *via, const char *resource, hyperty_response_handler_t handler,
                        void *userdata);
/* via NULL: read/update sent to the resource itself. */
int hyperty_read(hyperty *h, const char *via, const char *resource, hyperty_response_handler_t handler,
                 void *userdata);
int hyperty_update(hyperty *h, const char *via, const char *resource, json_t *senml,
                   hyperty_response_handler_t handler, void *userdata);
/* read to domain://registry.<domain> with body.criteria. */
int hyperty_discover(hyperty *h, json_t *criteria, hyperty_response_handler_t handler, void *userdata);
/* execute loadProtoStub; the answer's value.address is the stub. */
int hyperty_load_protostub(hyperty *h, json_t *target, hyperty_response_handler_t handler, void *userdata);
