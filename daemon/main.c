/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "agent.h"
#include "config.h"
#include "log.h"

int main(int argc, char *argv[]) {
        _cleanup_config_ agent_config *args = NULL, *config = NULL;
        _cleanup_agent_ agent *a = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        log_open();

        r = config_new(&args);
        if (r < 0)
                return log_oom(), EXIT_FAILURE;
        r = config_parse_argv(args, argc, argv, &error);
        if (r == CONFIG_ARGV_EXIT)
                return EXIT_SUCCESS;
        if (r < 0) {
                log_error("%s", error ?: "Out of memory.");
                return EXIT_FAILURE;
        }
        r = config_load(args, &config, &error);
        if (r < 0) {
                log_error("%s", error ?: "Out of memory.");
                return EXIT_FAILURE;
        }

        r = agent_new(config, &a);
        if (r < 0) {
                log_error_errno(r, "Failed to create the agent: %m");
                return EXIT_FAILURE;
        }
        TAKE_PTR(config);

        r = agent_start(a);
        if (r < 0)
                return EXIT_FAILURE;
        r = agent_run(a);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
