/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Gates: what the rest of the agent may do given the connectivity.
 *
 *   downloads     open when the overall QoS state is ONLINE and, unless the
 *                 policy allows downloads on metered links, the interface
 *                 that carries the overall state is not metered.
 *   registration  open when the overall state is not OFFLINE (a degraded
 *                 link still carries a registration, and waiting would
 *                 only let it expire).
 *
 * Plus the mobility event: the primary interface or address changed, so
 * whatever was registered with the old address must be registered again.
 *
 * Subscribers get a callback for every open/close with the reason
 * ("online", "degraded", "offline", "metered") and for every mobility
 * event. They are not called on subscribe: read gates_is_open() for the
 * current value. All gates start closed ("starting") until the first
 * gates_update(). Callbacks may unsubscribe themselves (or others), but
 * must not call gates_update() or gates_mobility(). */

#include <stdbool.h>

#include "macro.h"
#include "qos.h"

typedef enum gate_kind {
        GATE_DOWNLOADS,
        GATE_REGISTRATION,
        _GATE_KIND_MAX,
        _GATE_KIND_INVALID = -EINVAL,
} gate_kind;

const char *gate_kind_to_string(gate_kind k);

typedef struct gate_mobility {
        const char *old_ifname;         /* NULL when there was no primary */
        const char *old_address;
        const char *new_ifname;         /* NULL when there is none now */
        const char *new_address;
} gate_mobility;

typedef void (*gate_handler_t)(gate_kind kind, bool open, const char *reason, void *userdata);
typedef void (*gate_mobility_handler_t)(const gate_mobility *ev, void *userdata);

typedef struct gates gates;
typedef struct gate_subscription gate_subscription;

int gates_new(gates **ret);
/* Frees the subscriptions too: their handles become invalid. */
gates *gates_free(gates *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(gates *, gates_free);
#define _cleanup_gates_ _cleanup_(gates_freep)

/* Subscribes to one gate (kind) or, with kind = _GATE_KIND_INVALID, to all
 * of them. ret may be NULL when the subscription lives as long as g. */
int gates_subscribe(gates *g, gate_kind kind, gate_handler_t handler, void *userdata,
                    gate_subscription **ret);
int gates_subscribe_mobility(gates *g, gate_mobility_handler_t handler, void *userdata,
                             gate_subscription **ret);
/* Unsubscribes. Accepts NULL, returns NULL. */
gate_subscription *gate_subscription_free(gate_subscription *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(gate_subscription *, gate_subscription_free);
#define _cleanup_gate_subscription_ _cleanup_(gate_subscription_freep)

/* Recomputes every gate from the overall state; subscribers hear about the
 * gates that changed, downloads first. */
void gates_update(gates *g, qos_state overall, bool metered, bool downloads_on_metered);
/* Delivers a mobility event to the mobility subscribers. */
void gates_mobility(gates *g, const gate_mobility *ev);

bool gates_is_open(const gates *g, gate_kind kind, const char **ret_reason);
