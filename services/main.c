/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "domain-config.h"
#include "domain.h"
#include "log.h"

int main(int argc, char *argv[]) {
        _cleanup_domain_config_ domain_config *args = NULL, *config = NULL;
        _cleanup_domain_ domain *d = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        log_open();

        r = domain_config_new(&args);
        if (r < 0)
                return log_oom(), EXIT_FAILURE;
        r = domain_config_parse_argv(args, argc, argv, &error);
        if (r == DOMAIN_CONFIG_ARGV_EXIT)
                return EXIT_SUCCESS;
        if (r < 0) {
                log_error("%s", error ?: "Out of memory.");
                return EXIT_FAILURE;
        }
        r = domain_config_load(args, &config, &error);
        if (r < 0) {
                log_error("%s", error ?: "Out of memory.");
                return EXIT_FAILURE;
        }

        r = domain_new(NULL, config, &d);
        if (r < 0) {
                log_error_errno(r, "Failed to create the domain: %m");
                return EXIT_FAILURE;
        }
        TAKE_PTR(config);

        r = domain_start(d);
        if (r < 0)
                return EXIT_FAILURE;
        r = domain_run(d);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
