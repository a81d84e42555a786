/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethinkctl verbs for the runtime: the runtime APIs loadHyperty and
 * loadProtoStub (docs/bus.md), and the running component instances with
 * their bus addresses. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl-output.h"
#include "macro.h"
#include "verbs.h"

static int print_loaded(json_t *result) {
        if (arg_json != JSON_OFF)
                return print_json(result);
        printf("%s\n", strna(jstr(result, "address")));
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* A component name, or its descriptor's URL in the Catalogue. */
int verb_load_hyperty(int argc, char **argv) {
        json_auto_t *args = json_pack("{s:s}", strstr(argv[1], "://") ? "descriptor" : "name", argv[1]),
                    *result = NULL;

        if (!args)
                return EXIT_FAILED;
        if (call_agent("load-hyperty", args, &result) != 0)
                return EXIT_FAILED;
        return print_loaded(result);
}

/* A domain name, or a peer's Local M2M Resource Directory as an https URL
 * (then the peer's domain is ours unless given as a second argument). */
int verb_load_protostub(int argc, char **argv) {
        json_auto_t *args = NULL, *result = NULL;

        if (strncmp(argv[1], "https://", 8) == 0 || strncmp(argv[1], "http://", 7) == 0)
                args = argc > 2 ? json_pack("{s:s,s:s}", "peer", argv[1], "domain", argv[2])
                                : json_pack("{s:s}", "peer", argv[1]);
        else if (argc > 2) {
                fprintf(stderr, "A second argument is only for a peer URL (its domain).\n");
                return EXIT_USAGE;
        } else
                args = json_pack("{s:s}", "domain", argv[1]);
        if (!args)
                return EXIT_FAILED;
        if (call_agent("load-protostub", args, &result) != 0)
                return EXIT_FAILED;
        return print_loaded(result);
}

int verb_instances(int argc, char **argv) {
        static const char *const headers[] = { "ADDRESS", "COMPONENT", "KIND", "BUS", "RESOURCES" };
        json_auto_t *result = NULL;
        _cleanup_table_ table *t = NULL;
        json_t *list, *i_json;
        size_t i;
        int r = 0;

        if (call_agent("instances", NULL, &result) != 0)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(result);
        list = json_object_get(result, "instances");
        if (json_array_size(list) == 0) {
                printf("No component instances.\n");
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }
        t = table_new_with_header(headers, ELEMENTSOF(headers));
        if (!t)
                return EXIT_FAILED;
        json_array_foreach(list, i, i_json) {
                char resources[16];
                int connected = jbool(i_json, "connected");

                snprintf(resources, sizeof(resources), "%zu",
                         json_array_size(json_object_get(i_json, "resources")));
                r = r ?: table_add_cell(t, strna(jstr(i_json, "address")), NULL);
                r = r ?: table_add_cell(t, strna(jstr(i_json, "component")), NULL);
                r = r ?: table_add_cell(t, strna(jstr(i_json, "kind")), NULL);
                r = r ?: table_add_cell(t, connected == 1 ? "connected" : "-",
                                        connected == 1 ? state_color("online") : NULL);
                r = r ?: table_add_cell(t, resources, NULL);
        }
        if (r < 0) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILED;
        }
        if (table_print(t, stdout) < 0 || fflush(stdout) != 0)
                return EXIT_FAILED;
        return EXIT_OK;
}
