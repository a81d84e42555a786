/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The agent's side of the domain's bootstrap orders (docs/bootstrap.md):
 *
 *  - messages arriving on the messaging session from the domain's device
 *    management server (domain://catalogue.<domain>/dm) are software
 *    orders: they go to the software manager with the principal
 *    "dm:<domain>" and each is answered with a response message (200/201,
 *    or the order's error status with a description). A request from any
 *    other sender is refused with 403 and changes nothing.
 *  - every committed transition of the software manager is reported to
 *    that address as an "update" message whose value is the transition
 *    (name, version, state, prevState, result, reason, active, removed,
 *    principal), so the domain can follow steps 12 and 16 of the bootstrap.
 *
 * What cannot be sent while the session is down is kept, up to
 * DOMAIN_ORDERS_PENDING_MAX messages (the oldest dropped first), and sent
 * when the session's stream is up again (it takes the session's state
 * handler for that) or before the next message, whichever comes first. */

#include "macro.h"
#include "message.h"
#include "registration-session.h"
#include "swmgr.h"

#define DOMAIN_ORDERS_PENDING_MAX 256u
#define DOMAIN_ORDERS_MESSAGE_ID_REFUSED "27b826f4774f46539262a907a50b3cd1"

typedef struct domain_orders domain_orders;

/* Borrows m and s (they must outlive o); sets the software manager's DM
 * principal and takes over its event handler and the session's state
 * handler. domain_name as in runtime://<domain_name>/... */
int domain_orders_new(swmgr *m, reg_session *s, const char *domain_name, domain_orders **ret);
/* Gives the software manager's event handler back. */
domain_orders *domain_orders_free(domain_orders *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(domain_orders *, domain_orders_free);
#define _cleanup_domain_orders_ _cleanup_(domain_orders_freep)

/* For the session's message handler: every message from the domain. */
void domain_orders_handle_message(domain_orders *o, const rt_message *m);

/* domain://catalogue.<domain>/dm */
const char *domain_orders_get_dm_address(const domain_orders *o);
/* "dm:<domain>" */
const char *domain_orders_get_principal(const domain_orders *o);
unsigned domain_orders_get_n_refused(const domain_orders *o);
size_t domain_orders_get_n_pending(const domain_orders *o);
