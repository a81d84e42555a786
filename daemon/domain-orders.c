/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "domain-orders.h"
#include "log.h"

struct domain_orders {
        swmgr *swmgr;
        reg_session *session;
        char *dm_address;
        char *principal;
        uint64_t next_id;
        unsigned n_refused;
        rt_message **pending;
        size_t n_pending;
};

/* Sends what waits, then m (borrowed, may be NULL); keeps what cannot
 * go yet. */
static void send_or_keep(domain_orders *o, const rt_message *m) {
        size_t done = 0;
        int r = 0;

        for (; done < o->n_pending; done++) {
                r = reg_session_send(o->session, o->pending[done]);
                if (r < 0)
                        break;
                rt_message_free(o->pending[done]);
        }
        memmove(o->pending, o->pending + done, (o->n_pending - done) * sizeof(*o->pending));
        o->n_pending -= done;

        if (!m)
                return;
        if (r >= 0) {
                r = reg_session_send(o->session, m);
                if (r >= 0)
                        return;
        }
        if (r != -ENOTCONN) {
                log_warning_errno(r, "Failed to send message %" PRIu64 " to the domain: %m", rt_message_get_id(m));
                return;
        }
        {
                _cleanup_free_ char *json = NULL;
                rt_message *copy = NULL;

                /* A deep copy through the wire form: the caller's message
                 * is borrowed. */
                if (rt_message_to_json(m, &json) < 0 || rt_message_parse(json, strlen(json), NULL, &copy, NULL) < 0) {
                        log_oom();
                        return;
                }
                if (o->n_pending == DOMAIN_ORDERS_PENDING_MAX) {
                        log_warning("Too many messages for the domain wait for the session; dropping the oldest.");
                        rt_message_free(o->pending[0]);
                        memmove(o->pending, o->pending + 1, (o->n_pending - 1) * sizeof(*o->pending));
                        o->n_pending--;
                }
                o->pending[o->n_pending++] = copy;
        }
}

static void on_swmgr_event(const swmgr_event *ev, void *userdata) {
        domain_orders *o = userdata;
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_rt_message_ rt_message *m = NULL;
        const char *runtime = reg_session_get_runtime(o->session);
        int r;

        body = json_pack("{s:s, s:s, s:{s:s, s:s?, s:s, s:s, s:i, s:s?, s:b, s:b, s:s?}}", "resource", runtime,
                         "attribute", ev->name, "value",
                         "name", ev->name, "version", ev->version, "state", swm_state_to_string(ev->state),
                         "prevState", swm_state_to_string(ev->prev_state), "result", ev->result, "reason", ev->reason,
                         "active", ev->active, "removed", ev->removed, "principal", ev->principal);
        if (!body)
                return (void) log_oom();
        r = rt_message_new(RT_MESSAGE_UPDATE, o->next_id++, runtime, o->dm_address, body, &m);
        if (r < 0) {
                log_warning_errno(r, "Failed to build the report of %s for the domain: %m", ev->name);
                return;
        }
        send_or_keep(o, m);
}

void domain_orders_handle_message(domain_orders *o, const rt_message *m) {
        _cleanup_rt_message_ rt_message *resp = NULL;
        const char *from = rt_message_get_from(m);
        int r;

        if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE) {
                /* The domain acknowledging a report; errors are worth a line. */
                if (rt_message_get_code(m) >= 400)
                        log_notice("The domain answered message %" PRIu64 " with %d: %s", rt_message_get_id(m),
                                   rt_message_get_code(m), strna(rt_message_get_description(m)));
                send_or_keep(o, NULL);
                return;
        }
        if (!streq(from, o->dm_address)) {
                o->n_refused++;
                log_struct(LOG_WARNING,
                           LOG_MESSAGE("Refused a software order (%s %" PRIu64 ") from %s: only %s may order software.",
                                       rt_message_type_to_string(rt_message_get_type(m)), rt_message_get_id(m), from,
                                       o->dm_address),
                           LOG_MESSAGE_ID(DOMAIN_ORDERS_MESSAGE_ID_REFUSED), LOG_FIELD("ORDER_FROM", "%s", from));
                r = rt_message_new_error(m, NULL, 403, "only the domain's device management server orders software",
                                         &resp);
        } else
                r = swmgr_handle_message(o->swmgr, o->principal, m, &resp);
        if (r < 0) {
                log_warning_errno(r, "Failed to answer message %" PRIu64 " from %s: %m", rt_message_get_id(m), from);
                return;
        }
        if (rt_message_get_code(resp) >= 400)
                log_info("Order %" PRIu64 " from %s refused with %d: %s", rt_message_get_id(m), from,
                         rt_message_get_code(resp), strna(rt_message_get_description(resp)));
        send_or_keep(o, resp);
}

/* What waited for the session goes out as soon as its stream is up. */
static void on_session_state(reg_session_state state, int status, void *userdata) {
        domain_orders *o = userdata;

        if (state == REG_SESSION_STREAMING && o->n_pending > 0)
                send_or_keep(o, NULL);
}

int domain_orders_new(swmgr *m, reg_session *s, const char *domain_name, domain_orders **ret) {
        _cleanup_domain_orders_ domain_orders *o = NULL;
        int r;

        if (!m || !s || !domain_name || !ret)
                return -EINVAL;
        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->pending = calloc(DOMAIN_ORDERS_PENDING_MAX, sizeof(*o->pending));
        if (!o->pending)
                return -ENOMEM;
        o->next_id = 1;
        if (asprintf(&o->dm_address, "domain://catalogue.%s/dm", domain_name) < 0) {
                o->dm_address = NULL;
                return -ENOMEM;
        }
        if (asprintf(&o->principal, "dm:%s", domain_name) < 0) {
                o->principal = NULL;
                return -ENOMEM;
        }
        if (!rt_address_is_valid(o->dm_address))
                return -EINVAL;
        r = swmgr_set_dm_principal(m, o->principal);
        if (r < 0)
                return r;
        o->swmgr = m;
        o->session = s;
        swmgr_set_event_handler(m, on_swmgr_event, o);
        reg_session_set_state_handler(s, on_session_state, o);
        *ret = TAKE_PTR(o);
        return 0;
}

domain_orders *domain_orders_free(domain_orders *o) {
        if (!o)
                return NULL;
        if (o->swmgr)
                swmgr_set_event_handler(o->swmgr, NULL, NULL);
        if (o->session)
                reg_session_set_state_handler(o->session, NULL, NULL);
        for (size_t i = 0; i < o->n_pending; i++)
                rt_message_free(o->pending[i]);
        free(o->pending);
        free(o->dm_address);
        free(o->principal);
        free(o);
        return NULL;
}

const char *domain_orders_get_dm_address(const domain_orders *o) {
        return o->dm_address;
}

const char *domain_orders_get_principal(const domain_orders *o) {
        return o->principal;
}

unsigned domain_orders_get_n_refused(const domain_orders *o) {
        return o->n_refused;
}

size_t domain_orders_get_n_pending(const domain_orders *o) {
        return o->n_pending;
}
