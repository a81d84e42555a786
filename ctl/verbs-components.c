/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethinkctl verbs for the agent's software manager: list the components,
 * install one from a descriptor, and the orders on one component (consent,
 * activation, uninstall). Commands and results: docs/software-management.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl-output.h"
#include "fileio.h"
#include "macro.h"
#include "verbs.h"

#define DESCRIPTOR_MAX (1024U * 1024U)

static const char *component_state_color(const char *state) {
        if (!state)
                return NULL;
        if (streq(state, "ACTIVE") || streq(state, "INSTALLED"))
                return state_color("online");
        if (streq(state, "DELIVERED") || streq(state, "DOWNLOAD_STARTED") || streq(state, "DOWNLOADED"))
                return state_color("degraded");
        return NULL;
}

/* "45%", "100%", or "-" before the size is known. */
static char *format_progress(char *buf, size_t size, json_t *c) {
        uint64_t bytes = juint(c, "bytes"), total = juint(c, "total");

        if (total == 0)
                snprintf(buf, size, "-");
        else
                snprintf(buf, size, "%" PRIu64 "%%", (bytes >= total ? total : bytes) * 100 / total);
        return buf;
}

/* "running 1234", "restarting (2 restarts)", or "-" when nothing runs. */
static char *format_process(char *buf, size_t size, json_t *c) {
        const char *process = jstr(c, "process");
        uint64_t pid = juint(c, "pid"), restarts = juint(c, "restarts");
        int n;

        if (!process) {
                snprintf(buf, size, "-");
                return buf;
        }
        n = pid > 0 ? snprintf(buf, size, "%.16s %" PRIu64, process, pid) : snprintf(buf, size, "%.16s", process);
        if (restarts > 0 && n > 0 && (size_t) n < size)
                snprintf(buf + n, size - n, " (%" PRIu64 " restart%s)", restarts, restarts == 1 ? "" : "s");
        for (char *q = buf; *q; q++)
                if ((unsigned char) *q < 0x20 || *q == 0x7f)
                        *q = ' ';
        return buf;
}

static int add_component_row(table *t, json_t *c) {
        _cleanup_free_ char *name = sanitized(jstr(c, "name")), *version = sanitized(jstr(c, "version")),
                            *type = sanitized(jstr(c, "type")), *state = sanitized(jstr(c, "state")),
                            *reason = sanitized(jstr(c, "reason") ?: jstr(c, "resultText"));
        char result[32], progress[16], process[80];
        json_t *v = json_object_get(c, "result");
        int r = 0;

        if (!name || !version || !type || !state || !reason)
                return -ENOMEM;
        if (json_is_integer(v))
                snprintf(result, sizeof(result), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
                snprintf(result, sizeof(result), "-");

        r = r ?: table_add_cell(t, name, NULL);
        r = r ?: table_add_cell(t, version, NULL);
        r = r ?: table_add_cell(t, type, NULL);
        r = r ?: table_add_cell(t, state, component_state_color(jstr(c, "state")));
        r = r ?: table_add_cell(t, result, NULL);
        r = r ?: table_add_cell(t, format_progress(progress, sizeof(progress), c), NULL);
        r = r ?: table_add_cell(t, format_process(process, sizeof(process), c), NULL);
        r = r ?: table_add_cell(t, reason, NULL);
        return r;
}

int verb_components(int argc, char **argv) {
        static const char *const headers[] = {
                "NAME", "VERSION", "TYPE", "STATE", "RESULT", "PROGRESS", "PROCESS", "REASON",
        };
        json_auto_t *result = NULL;
        _cleanup_table_ table *t = NULL;
        json_t *list, *c;
        size_t i;
        int r = 0;

        if (call_agent("components", NULL, &result) != 0)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(result);

        list = json_object_get(result, "components");
        if (json_array_size(list) == 0) {
                printf("No components.\n");
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }

        t = table_new_with_header(headers, ELEMENTSOF(headers));
        if (!t)
                return EXIT_FAILED;
        json_array_foreach(list, i, c)
                if (r == 0 && json_is_object(c))
                        r = add_component_row(t, c);
        if (r < 0) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILED;
        }
        if (table_print(t, stdout) < 0 || fflush(stdout) != 0)
                return EXIT_FAILED;
        printf("\n%zu component%s listed.\n", json_array_size(list), json_array_size(list) == 1 ? "" : "s");
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* One line on what the order left behind: "temp-producer: DELIVERED
 * (result 3, waiting for consent)". */
static int print_component(json_t *result) {
        json_t *c = json_object_get(result, "component");
        _cleanup_free_ char *name = NULL, *state = NULL, *reason = NULL;

        if (arg_json != JSON_OFF)
                return print_json(result);
        name = sanitized(jstr(c, "name"));
        if (!name)
                return EXIT_FAILED;
        if (jbool(c, "removed") == 1) {
                printf("%s: removed\n", name);
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }
        state = sanitized(jstr(c, "state"));
        reason = sanitized(jstr(c, "reason") ?: jstr(c, "resultText"));
        if (!state || !reason)
                return EXIT_FAILED;
        printf("%s: %s%s%s (result %" PRIu64 ", %s)\n", name, component_state_color(jstr(c, "state")) ?: "",
               state, component_state_color(jstr(c, "state")) ? color_reset() : "", juint(c, "result"), reason);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

int verb_install(int argc, char **argv) {
        _cleanup_free_ char *text = NULL;
        json_auto_t *descriptor = NULL, *args = NULL, *result = NULL;
        json_error_t error;
        size_t size;
        int r;

        r = read_full_file(argv[1], DESCRIPTOR_MAX, &text, &size);
        if (r < 0) {
                fprintf(stderr, "Failed to read %s: %s\n", argv[1], strerror(-r));
                return EXIT_FAILED;
        }
        descriptor = json_loadb(text, size, 0, &error);
        if (!descriptor || !json_is_object(descriptor)) {
                fprintf(stderr, "%s is not a JSON object: %s (line %d)\n", argv[1],
                        descriptor ? "another JSON value" : error.text, error.line);
                return EXIT_FAILED;
        }
        args = json_pack("{s:O}", "descriptor", descriptor);
        if (!args)
                return EXIT_FAILED;
        if (call_agent("install", args, &result) != 0)
                return EXIT_FAILED;
        return print_component(result);
}

/* accept, reject, activate, deactivate, uninstall NAME: the verb is the
 * command, the name its only argument. */
int verb_component_order(int argc, char **argv) {
        json_auto_t *args = NULL, *result = NULL;

        args = json_pack("{s:s}", "name", argv[1]);
        if (!args)
                return EXIT_FAILED;
        if (call_agent(argv[0], args, &result) != 0)
                return EXIT_FAILED;
        return print_component(result);
}
