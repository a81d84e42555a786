/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The runtime message bus (docs/bus.md): a Unix socket served by the agent
 * on its sd-event loop. Components (hyperties and protostubs) connect, say
 * hello with their per-instance token, and exchange reTHINK messages
 * (lib/message.h) as NDJSON (lib/bus-reader.h). The bus checks who speaks
 * (hello, `from`), routes by address (the runtime, local instances, the
 * Local M2M Resource Directory, domain routes to messaging protostubs) and
 * answers what it cannot deliver with error responses. It never blocks:
 * sockets are non-blocking, every client's output is bounded. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "message.h"

#define BUS_SOCKET_MODE 0666
#define BUS_TOKEN_BYTES 32

/* Defaults; see bus_set_limits(). */
#define BUS_CLIENTS_MAX 256
#define BUS_OUTPUT_MAX (1024U * 1024U)
#define BUS_HELLO_TIMEOUT_USEC (5ULL * 1000000ULL)
/* Connections that have not said hello yet, at once. */
#define BUS_HELLO_PENDING_MAX 32U
/* Addresses in one message's `to`. */
#define BUS_RECIPIENTS_MAX 16

typedef struct bus bus;

typedef enum bus_instance_kind {
        BUS_INSTANCE_HYPERTY,
        BUS_INSTANCE_PROTOSTUB,
        _BUS_INSTANCE_KIND_MAX,
        _BUS_INSTANCE_KIND_INVALID = -EINVAL,
} bus_instance_kind;

const char *bus_instance_kind_to_string(bus_instance_kind k);

/* Binds and listens on socket_path (mode 0666: the token authenticates, not
 * the file mode), attached to e. The parent directory is created (0755)
 * when missing; a stale socket (nobody accepting) is replaced, a live one
 * gives -EADDRINUSE, a file that is not a socket -EEXIST. runtime_address is
 * the agent's runtime://<domain>/<uuid>. */
int bus_new(sd_event *e, const char *socket_path, const char *runtime_address, bus **ret);
/* Closes every client, stops listening, removes the socket file if it is
 * still ours. Accepts NULL; returns NULL. */
bus *bus_free(bus *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(bus *, bus_free);
#define _cleanup_bus_ _cleanup_(bus_freep)

/* Overrides the defaults; 0 keeps the current value. clients_max caps the
 * connections at once (more are closed at once); output_max bounds what is
 * queued for one client (a client over it is disconnected);
 * hello_timeout_usec is how long a new connection has to say hello. */
void bus_set_limits(bus *b, unsigned clients_max, size_t output_max, uint64_t hello_timeout_usec);

/* Registers an instance that may connect: address is hyperty://<d>/<uuid>
 * for a hyperty, runtime://<d>/<uuid> for a protostub, never the runtime's
 * own. component is its component's name (for logs). *ret_token gets a fresh
 * token (256 random bits, base64url) for the instance to say hello with (to
 * be freed; the bus keeps its own copy). -EEXIST for an address that is
 * registered, -EINVAL for a bad address or kind. */
int bus_add_instance(bus *b, const char *address, bus_instance_kind kind, const char *component,
                     char **ret_token);
/* Forgets the instance and closes its connection (the instance handler is
 * told it went away). Domain routes naming it stay and answer 503 until
 * removed. -ENOENT when unknown. */
int bus_remove_instance(bus *b, const char *address);

bool bus_instance_is_connected(const bus *b, const char *address);
unsigned bus_get_n_clients(const bus *b);
const char *bus_get_path(const bus *b);
const char *bus_get_runtime_address(const bus *b);

/* What the runtime's services see. from is the sending instance's address
 * (not necessarily the message's `from`: protostubs relay); it is valid
 * until the handler returns. NULL from means the message came from the
 * runtime itself (bus_send()). */

/* Gets every message addressed to the runtime but the hello, responses
 * included. The handler answers with bus_send(). A negative return makes the
 * bus answer a request with an error: -EINVAL/-EBADMSG 400, -EPERM/-EACCES
 * 403, -ENOENT 404, -EOPNOTSUPP 501, anything else 500. */
typedef int (*bus_runtime_handler_t)(bus *b, const char *from, bus_instance_kind kind, const rt_message *m,
                                     void *userdata);
void bus_set_runtime_handler(bus *b, bus_runtime_handler_t handler, void *userdata);

/* Consulted for every `to` of the form ctxt://<d>/<uuid>[/...] where
 * hyperty://<d>/<uuid> is a registered local hyperty; to is that address.
 * Returns a combination of the flags below (0: not taken, the bus routes it
 * on as if there were no handler), or a negative errno answered like the
 * runtime handler's. */
#define BUS_LOCAL_TAKEN 1U   /* the handler took the message (and answers it with bus_send()) */
#define BUS_LOCAL_FORWARD 2U /* with TAKEN: also send it on the domain route (publications);
                              * alone it means the same as 0 */
typedef int (*bus_local_resource_handler_t)(bus *b, const char *from, bus_instance_kind kind,
                                            const rt_message *m, const char *to, void *userdata);
void bus_set_local_resource_handler(bus *b, bus_local_resource_handler_t handler, void *userdata);

/* Told when an instance said hello (connected) and when its connection is
 * gone (closed by either side, dropped for not reading, replaced, or the
 * instance removed). A replaced connection reports false, then true. Called
 * from the event loop shortly after the fact, never from inside a bus call,
 * so the handler may call any bus function. */
typedef void (*bus_instance_handler_t)(bus *b, const char *address, bool connected, void *userdata);
void bus_set_instance_handler(bus *b, bus_instance_handler_t handler, void *userdata);

/* Messages to hyperty://D/..., runtime://D/..., ctxt://D/..., domain://D[/...]
 * and domain://<x>.D[/...] that no local instance takes go to the protostub
 * stub_address (the longest matching D wins). Setting a route for D again
 * replaces it. -EINVAL for a bad domain or address. */
int bus_set_domain_route(bus *b, const char *domain, const char *stub_address);
/* -ENOENT when there is none. */
int bus_remove_domain_route(bus *b, const char *domain);

/* The overall connectivity the hello answer reports: "online", "degraded"
 * or "offline" (default "online"). Set it when QoS changes, then
 * bus_broadcast() the execute. */
int bus_set_connectivity(bus *b, const char *state);

/* An id for a request the runtime sends (increasing, from 1), so that all
 * of the runtime's own requests are told apart by their responses. */
uint64_t bus_next_id(bus *b);

/* Sends a message from the runtime (or its services): routes each `to` like
 * a message from a client, except that the local resource handler is not
 * consulted (the directory itself sends through here). Returns 0 when it
 * was queued for every recipient; else the first failure: -ENOTCONN for a
 * known destination that is not connected (or was just dropped for not
 * reading), -EHOSTUNREACH when there is no route, -EMSGSIZE for a message
 * over the line limit. Nothing is answered with an error on the bus. */
int bus_send(bus *b, const rt_message *m);

/* Sends one message of type type from the runtime to every connected
 * instance, each with its own `to` and a fresh bus_next_id(); body is
 * borrowed (copied). Returns the number of instances it was queued for. */
int bus_broadcast(bus *b, rt_message_type type, json_t *body);
