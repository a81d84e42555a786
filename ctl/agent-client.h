/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A blocking client for the agent's control socket, for rethinkctl: a tool
 * may wait for its answer, but never longer than its timeout. One
 * connection carries any number of calls, one at a time. */

#include <jansson.h>
#include <stdint.h>

#include "ctlproto.h"
#include "macro.h"

typedef struct agent_client agent_client;

/* Connects to the socket at path. Fails with the connect() errno: -ENOENT
 * (no socket: the agent is not running), -ECONNREFUSED (a stale socket),
 * -EACCES (not allowed), -ETIMEDOUT (the agent does not accept in time). */
int agent_client_connect(const char *path, uint64_t timeout_usec, agent_client **ret);
agent_client *agent_client_free(agent_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(agent_client *, agent_client_free);
#define _cleanup_agent_client_ _cleanup_(agent_client_freep)

/* Sends command with args (NULL for none) and waits for its reply, which may
 * be an error reply: check ctl_reply_is_ok(). Fails with -ETIMEDOUT when the
 * reply does not come within timeout_usec, -ECONNRESET when the agent hangs
 * up first, -EBADMSG when the reply is not valid or answers another id. */
int agent_client_call(agent_client *c, const char *command, json_t *args, uint64_t timeout_usec,
                      ctl_reply **ret_reply);
