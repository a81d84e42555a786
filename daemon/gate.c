/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "gate.h"
#include "log.h"

struct gate_subscription {
        gates *gates;
        gate_kind kind;         /* _GATE_KIND_INVALID: all gates */
        bool mobility;
        bool dead;
        gate_handler_t handler;
        gate_mobility_handler_t mobility_handler;
        void *userdata;
        gate_subscription *next;
};

struct gates {
        bool open[_GATE_KIND_MAX];
        const char *reason[_GATE_KIND_MAX];
        gate_subscription *subscriptions;
        unsigned dispatching;
};

static const char *const kind_names[_GATE_KIND_MAX] = {
        [GATE_DOWNLOADS] = "downloads",
        [GATE_REGISTRATION] = "registration",
};

const char *gate_kind_to_string(gate_kind k) {
        if (k < 0 || k >= _GATE_KIND_MAX)
                return NULL;
        return kind_names[k];
}

int gates_new(gates **ret) {
        gates *g;

        if (!ret)
                return -EINVAL;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        for (int k = 0; k < _GATE_KIND_MAX; k++)
                g->reason[k] = "starting";
        *ret = g;
        return 0;
}

gates *gates_free(gates *g) {
        if (!g)
                return NULL;
        while (g->subscriptions) {
                gate_subscription *s = g->subscriptions;
                g->subscriptions = s->next;
                free(s);
        }
        free(g);
        return NULL;
}

static int subscribe(gates *g, gate_subscription *tmpl, gate_subscription **ret) {
        gate_subscription *s, **p;

        s = malloc(sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = *tmpl;
        s->gates = g;
        s->next = NULL;
        /* Append, so subscribers hear in subscription order. */
        for (p = &g->subscriptions; *p; p = &(*p)->next)
                ;
        *p = s;
        if (ret)
                *ret = s;
        return 0;
}

int gates_subscribe(gates *g, gate_kind kind, gate_handler_t handler, void *userdata,
                    gate_subscription **ret) {
        if (!g || !handler || kind >= _GATE_KIND_MAX || (kind < 0 && kind != _GATE_KIND_INVALID))
                return -EINVAL;
        return subscribe(g, &(gate_subscription) { .kind = kind, .handler = handler, .userdata = userdata },
                         ret);
}

int gates_subscribe_mobility(gates *g, gate_mobility_handler_t handler, void *userdata,
                             gate_subscription **ret) {
        if (!g || !handler)
                return -EINVAL;
        return subscribe(g,
                         &(gate_subscription) { .mobility = true, .mobility_handler = handler,
                                                .userdata = userdata },
                         ret);
}

static void sweep(gates *g) {
        gate_subscription **p = &g->subscriptions;

        while (*p) {
                gate_subscription *s = *p;
                if (s->dead) {
                        *p = s->next;
                        free(s);
                } else
                        p = &s->next;
        }
}

gate_subscription *gate_subscription_free(gate_subscription *s) {
        if (!s)
                return NULL;
        /* During a dispatch the list is being walked: mark now, unlink after. */
        s->dead = true;
        if (s->gates->dispatching == 0)
                sweep(s->gates);
        return NULL;
}

static void notify(gates *g, gate_kind kind) {
        g->dispatching++;
        for (gate_subscription *s = g->subscriptions; s; s = s->next)
                if (!s->dead && !s->mobility && (s->kind == kind || s->kind == _GATE_KIND_INVALID))
                        s->handler(kind, g->open[kind], g->reason[kind], s->userdata);
        if (--g->dispatching == 0)
                sweep(g);
}

static void set_gate(gates *g, gate_kind kind, bool open, const char *reason) {
        bool changed = g->open[kind] != open;

        g->reason[kind] = reason;
        if (!changed)
                return;
        g->open[kind] = open;
        log_debug("Gate %s %s (%s).", kind_names[kind], open ? "opened" : "closed", reason);
        notify(g, kind);
}

void gates_update(gates *g, qos_state overall, bool metered, bool downloads_on_metered) {
        const char *state = qos_state_to_string(overall) ?: "offline";

        if (overall == QOS_ONLINE && metered && !downloads_on_metered)
                set_gate(g, GATE_DOWNLOADS, false, "metered");
        else
                set_gate(g, GATE_DOWNLOADS, overall == QOS_ONLINE, state);

        set_gate(g, GATE_REGISTRATION, overall != QOS_OFFLINE, state);
}

void gates_mobility(gates *g, const gate_mobility *ev) {
        g->dispatching++;
        for (gate_subscription *s = g->subscriptions; s; s = s->next)
                if (!s->dead && s->mobility)
                        s->mobility_handler(ev, s->userdata);
        if (--g->dispatching == 0)
                sweep(g);
}

bool gates_is_open(const gates *g, gate_kind kind, const char **ret_reason) {
        if (kind < 0 || kind >= _GATE_KIND_MAX)
                return false;
        if (ret_reason)
                *ret_reason = g->reason[kind];
        return g->open[kind];
}
