/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Messaging Service: runtime sessions and message routing.
 *
 *   POST   /msg/sessions                  open or re-open the session of a
 *                                         runtime (token scope "runtime")
 *   GET    /msg/sessions/<id>/stream      the session's long-lived NDJSON
 *                                         stream: every message for the
 *                                         runtime, one per line
 *   POST   /msg/sessions/<id>/messages    one message, or NDJSON of several,
 *                                         for routing (202)
 *   DELETE /msg/sessions/<id>             close the session (204)
 *
 * Messages are routed by "to": runtime:// to that runtime's session,
 * hyperty:// to the session of the runtime that hosts it, ctxt:// to the
 * resource directory (publications fan out to subscribers, updates from
 * others are actuation and go to the reporter, reads are answered with the
 * last value), domain://msg-node.<domain>/sm to the subscription manager.
 * Whatever cannot be delivered comes back to the sender as an error
 * response with a code. Each session queues up to a bound while no stream
 * is attached (oldest dropped first, counted, and the count reported when
 * a stream drains the queue). docs/protocol.md has the details.
 *
 * State: <StateDirectory>/msg.db (subscriptions, last values, which token
 * subject owns which runtime). Queues live in memory: what was not
 * delivered is lost on a restart, subscriptions are not. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "h2-server.h"
#include "macro.h"
#include "message.h"
#include "router.h"

#define MSG_DB_FILE_NAME "msg.db"
/* Messages kept per session while its runtime is away, and the bytes
 * they may take together; past either the oldest go first. */
#define MSG_QUEUE_MAX_DEFAULT 1000u
#define MSG_QUEUE_MAX_BYTES (4u * 1024u * 1024u)
/* A session without a stream for this long is closed, queue and all. */
#define MSG_SESSION_IDLE_USEC_DEFAULT (24ULL * 3600ULL * 1000000ULL)
/* A POST of messages: up to this many bytes (each message at most
 * RT_MESSAGE_MAX_SIZE_DEFAULT). */
#define MSG_POST_MAX_BODY (1024u * 1024u)

typedef struct msg msg;

/* Checks the request's credentials for scope. 0 with *ret_subject (to be
 * freed) on success; -EACCES (answered 401) or -EPERM (403) with a static
 * *ret_reason otherwise. */
typedef int (*msg_auth_fn)(H2Request *req, const char *scope, char **ret_subject, const char **ret_reason,
                           void *userdata);
/* The same, also giving *ret_expiry (CLOCK_REALTIME µs) when the
 * credential stops being valid. With it a session remembers the credential
 * it last accepted for its owner until then, so a runtime POSTing message
 * after message pays for one signature check, not one each. The domain
 * wires the IdM's bearer check in here. */
typedef int (*msg_auth_expiry_fn)(H2Request *req, const char *scope, char **ret_subject, uint64_t *ret_expiry,
                                  const char **ret_reason, void *userdata);
/* Which runtime hosts hyperty: 1 with *ret_runtime (to be freed), 0 when
 * unknown, negative errno on failure. The Global Registry plugs in here. */
typedef int (*msg_hyperty_lookup_fn)(const char *hyperty, char **ret_runtime, void *userdata);

/* domain_name: the domain's DNS name, as in runtime://<domain>/... Opens
 * (creating) state_dir/msg.db. */
int msg_new(sd_event *e, const char *domain_name, const char *state_dir, msg **ret);
/* Ends every stream and writes pending last values. */
msg *msg_free(msg *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(msg *, msg_free);
#define _cleanup_msg_ _cleanup_(msg_freep)

/* Without an auth function every request is refused (401). Each setter
 * replaces what the other set. */
void msg_set_auth(msg *m, msg_auth_fn fn, void *userdata);
void msg_set_auth_expiry(msg *m, msg_auth_expiry_fn fn, void *userdata);
void msg_set_hyperty_lookup(msg *m, msg_hyperty_lookup_fn fn, void *userdata);
/* At least 1. */
void msg_set_queue_max(msg *m, size_t n);
/* How long a session may stay without a stream; at least 1 s. */
void msg_set_session_idle(msg *m, uint64_t usec);
int msg_add_routes(msg *m, router *r);

/* Routes a message built by another domain service (e.g. a device
 * management command to runtime://...); errors come back as negative
 * errno instead of an error response: -ENOENT no such destination. */
int msg_send(msg *m, const rt_message *message);

/* Publishes value (a SenML pack, borrowed) to resource (ctxt://) on
 * behalf of another domain service, named by reporter (e.g.
 * domain://registry.<domain>): stored as the last value and fanned out
 * like a runtime's publication. -EINVAL for a bad resource or pack,
 * -EPERM when a runtime reports that resource. */
int msg_publish(msg *m, const char *resource, const char *reporter, json_t *value);

/* Another domain service reached through the Messaging Service, e.g. the
 * device management server at domain://catalogue.<domain>/dm: every
 * message routed to address is handed to fn (borrowed for the call)
 * instead of a session. runtime and owner name the sending session (owner
 * is its token subject), both NULL when another domain service sent it.
 * fn answers itself (msg_send()) if it wants to. Up to MSG_SERVICES_MAX;
 * -EEXIST when address is taken, -EINVAL for a bad address. */
#define MSG_SERVICES_MAX 8
typedef void (*msg_service_fn)(const rt_message *message, const char *runtime, const char *owner,
                               void *userdata);
int msg_add_service(msg *m, const char *address, msg_service_fn fn, void *userdata);
/* Called each time a stream attaches to a session, after what was queued
 * for it went out: services re-send what found no session before. */
typedef void (*msg_stream_fn)(const char *runtime, const char *owner, void *userdata);
void msg_set_stream_handler(msg *m, msg_stream_fn fn, void *userdata);
/* The runtime owner (a token subject, e.g. a device endpoint) opened its
 * latest session for, as recorded in msg.db: 1 with *ret (to be freed),
 * 0 when owner never opened one, negative errno on failure. */
int msg_get_runtime_of(msg *m, const char *owner, char **ret);

/* A Global Registry status change ("live", "disconnected", "deleted") of
 * the entry url (e.g. hyperty://<domain>/<uuid>), published from
 * domain://registry.<domain> to ctxt://<domain>/registry/<scheme>/<rest
 * of url> as [{"n":"status","vs":status}]: whoever subscribed there (or
 * to ctxt://<domain>/registry) hears of it. */
int msg_publish_status(msg *m, const char *url, const char *status);

/* domain://msg-node.<domain>/sm */
const char *msg_get_sm_address(msg *m);
size_t msg_get_n_sessions(msg *m);
