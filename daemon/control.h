/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Control socket of rethink-agent: the contract the daemon's commands and
 * rethinkctl implement; docs/control.md has the full result schemas, the
 * limits and the error codes.
 *
 * AF_UNIX SOCK_STREAM, default /run/rethink/agent.sock, mode 0660, group
 * "rethink" when it exists. One JSON object per line:
 *   request  {"id": N, "command": "qos", "args": {...}}
 *   reply    {"id": N, "ok": true, "result": {...}}
 *            {"id": N, "ok": false, "error": {"code": 404, "description": "..."}}
 *
 * `status` result: {"version", "pid", "uptime_usec", "status_text",
 *   "qos": "online|degraded|offline", "bpf": "enabled|netlink-only",
 *   "bpf_reason", "interfaces"}
 * `qos` result: {"overall": {"state","since_usec","reason"},
 *   "bpf": {"enabled","reason"},
 *   "gates": {"downloads": {"open","reason"}, "registration": {"open","reason"}},
 *   "primary": {"interface","address"},
 *   "interfaces": [{"name","ifindex","state","prev_state","since_usec","reason",
 *     "metered","oper_state","carrier","addresses","default_route","rtt_us",
 *     "retrans_per_mille","rto_events","rx_bps","tx_bps","rx_bytes","tx_bytes"}]}
 *
 * The server runs on the agent's sd-event loop and never blocks it: sockets
 * are non-blocking, each client has a bounded output buffer and an idle
 * timeout, and the number of clients is capped. Framing, parsing and
 * serialising live in lib/ctlproto.h so rethinkctl and the fuzzer share them. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "ctlproto.h"
#include "macro.h"

#define CONTROL_SOCKET_DEFAULT "/run/rethink/agent.sock"
#define CONTROL_SOCKET_GROUP "rethink"
#define CONTROL_SOCKET_MODE 0660

/* Defaults; see control_server_set_limits(). */
#define CONTROL_CLIENTS_MAX 64
#define CONTROL_OUTPUT_MAX CTLPROTO_REPLY_MAX
#define CONTROL_IDLE_TIMEOUT_USEC (60ULL * 1000000ULL)

typedef struct control_server control_server;
typedef struct control_request control_request;

/* A command handler. On success it returns >= 0 and may set *ret_result to a
 * JSON object it hands over (NULL means an empty object). On failure it
 * returns a negative errno, which becomes an error reply: -EINVAL/-EBADMSG
 * 400, -EPERM/-EACCES 403, -ENOENT 404, anything else 500, with strerror()
 * as the description, unless the handler chose the code and description
 * with control_request_set_error() first. *ret_result is ignored then. */
typedef int (*control_handler_t)(control_request *req, json_t **ret_result, void *userdata);

/* Binds and listens on path, attached to the event loop e at the given
 * priority. A stale socket at path (nobody accepting) is replaced; a live one
 * gives -EADDRINUSE; a file that is not a socket gives -EEXIST. The parent
 * directory is created (0755) when missing. The socket gets mode 0660 from
 * the start and group "rethink" when that group exists. */
int control_server_new(sd_event *e, const char *path, control_server **ret);

/* Closes every client, stops listening and removes the socket file if it
 * is still ours. Accepts NULL; returns NULL. */
control_server *control_server_free(control_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(control_server *, control_server_free);
#define _cleanup_control_server_ _cleanup_(control_server_freep)

/* Registers a handler for command name (ctlproto_command_is_valid()).
 * -EEXIST when the name is taken. userdata is passed through. */
int control_server_add_command(control_server *s, const char *name, control_handler_t handler,
                               void *userdata);

/* Overrides the defaults: 0 keeps the current value. clients_max caps the
 * connections at once (the next one gets error 503 and is closed).
 * output_max is the largest reply line, at most CTLPROTO_REPLY_MAX; a larger
 * reply becomes error 500 "Reply too large". No requests are read from a
 * client while 64 KiB of replies wait for it, so what is queued for one
 * client stays below 64 KiB + output_max. idle_usec drops a client that
 * neither sends nor reads for that long. */
void control_server_set_limits(control_server *s, unsigned clients_max, size_t output_max,
                               uint64_t idle_usec);

const char *control_server_get_path(const control_server *s);
unsigned control_server_get_n_clients(const control_server *s);

/* Accessors for handlers. args is never NULL (an empty object when the
 * request had none) and is borrowed: json_incref() it to keep it. */
int64_t control_request_get_id(const control_request *req);
const char *control_request_get_command(const control_request *req);
json_t *control_request_get_args(const control_request *req);
uid_t control_request_get_peer_uid(const control_request *req);
gid_t control_request_get_peer_gid(const control_request *req);
pid_t control_request_get_peer_pid(const control_request *req);

/* Sets the error reply's code (400-599) and description for a handler that
 * then fails. Returns -EINVAL for code 400, -EACCES for 403, -ENOENT for
 * 404, -EIO otherwise, so a handler can `return control_request_set_error(...)`. */
int control_request_set_error(control_request *req, int code, const char *format, ...)
        _printf_(3, 4);

/* Answers that need a round trip (to the domain, say): the handler calls
 * control_request_defer(), returns 0 and answers later with
 * control_deferred_reply() (takes result; NULL is an empty object) or
 * control_deferred_fail() (code 400-599), each of which frees d. If the
 * client is gone by then, the answer is dropped. The client stays open
 * while an answer is due, even after it stopped sending; the idle timeout
 * still applies, so answer within it. control_deferred_free() gives up
 * without an answer. Answers to one client may come out of request order;
 * the id tells them apart. */
typedef struct control_deferred control_deferred;
int control_request_defer(control_request *req, control_deferred **ret);
int control_deferred_reply(control_deferred *d, json_t *result);
int control_deferred_fail(control_deferred *d, int code, const char *description);
control_deferred *control_deferred_free(control_deferred *d);
