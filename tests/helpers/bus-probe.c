/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A hyperty for tests of the runtime's services on the real agent: its
 * configuration is {"script": [{"type": T, "to": A, "body": {...}}, ...]};
 * it sends each message in turn (to "runtime" means the runtime's address)
 * and logs every answer as "probe <n> <code> <description>", then stays. */
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-event.h>

#include "hyperty.h"
#include "log.h"
#include "macro.h"

static json_t *script;
static size_t next_step;

static void send_next(hyperty *h);

static void on_answer(hyperty *h, const rt_message *m, void *userdata) {
        log_info("probe %zu %d %s", (size_t) (uintptr_t) userdata, rt_message_get_code(m),
                 strna(rt_message_get_description(m)));
        send_next(h);
}

static void send_next(hyperty *h) {
        json_t *step = json_array_get(script, next_step);
        const char *type = json_string_value(json_object_get(step, "type"));
        const char *to = json_string_value(json_object_get(step, "to"));
        int r;

        if (!step) {
                log_info("probe done");
                return;
        }
        next_step++;
        if (streq_ptr(to, "runtime"))
                to = hyperty_get_runtime(h);
        r = hyperty_send(h, rt_message_type_from_string(type ?: ""), NULL, to, json_object_get(step, "body"),
                         on_answer, (void *) (uintptr_t) next_step, NULL);
        if (r < 0) {
                log_info("probe %zu not sent: %s", next_step, strerror(-r));
                send_next(h);
        }
}

static void on_state(hyperty *h, bool connected, void *userdata) {
        if (connected && next_step == 0)
                send_next(h);
}

int main(int argc, char *argv[]) {
        json_t *config = NULL;
        sd_event *e = NULL;
        hyperty *h = NULL;
        int r;

        log_open();
        r = hyperty_get_configuration(&config);
        script = json_object_get(config, "script");
        if (r < 0 || !json_is_array(script))
                return log_error("probe: configuration needs a script"), EXIT_FAILURE;
        if (hyperty_event_new(&e) < 0 || hyperty_new(e, NULL, &h) < 0)
                return EXIT_FAILURE;
        hyperty_set_state_handler(h, on_state, NULL);
        if (hyperty_connect(h) < 0)
                return EXIT_FAILURE;
        r = sd_event_loop(e);
        hyperty_free(h);
        sd_event_unref(e);
        json_decref(config);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
