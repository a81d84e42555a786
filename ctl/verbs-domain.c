/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethinkctl domain init: a rethink-domain set-up for a first try. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain-init.h"
#include "macro.h"
#include "verbs.h"

static char *default_addresses[] = { (char *) "127.0.0.1", (char *) "::1", NULL };

int verb_domain(int argc, char **argv) {
        _cleanup_free_ char *publisher = NULL, *dir = NULL;
        domain_init_options o = {
                .dir = argv[2],
                .name = arg_init_name ?: "localhost",
                .addresses = arg_init_addresses ?: default_addresses,
                .listen = arg_init_listen ?: "::",
                .port = arg_init_port,
                .force = arg_force,
        };
        const char *host;
        int r;

        if (!streq(argv[1], "init")) {
                fprintf(stderr, "Unknown domain command \"%s\"; the one there is: init DIR.\n", argv[1]);
                return EXIT_USAGE;
        }
        if (!domain_init_name_is_valid(o.name)) {
                fprintf(stderr, "Invalid --name= \"%s\": expected a DNS name, e.g. domain.example.\n", o.name);
                return EXIT_USAGE;
        }

        r = domain_init(&o, &publisher);
        if (r == -EEXIST) {
                fprintf(stderr, "%s already holds a domain set-up; use --force to replace it.\n", o.dir);
                return EXIT_FAILED;
        }
        if (r == -EINVAL) {
                fprintf(stderr, "Cannot put the name or an address into a certificate (see --name=, --address=).\n");
                return EXIT_USAGE;
        }
        if (r < 0) {
                fprintf(stderr, "Failed to make a domain set-up in %s: %s\n", o.dir, strerror(-r));
                return EXIT_FAILED;
        }

        /* The files are named by absolute path in the config, and so
         * here. */
        dir = realpath(o.dir, NULL);
        if (!dir) {
                fprintf(stderr, "Failed to resolve %s: %m\n", o.dir);
                return EXIT_FAILED;
        }

        /* The URL for the next commands: the first address, which the
         * certificate names. */
        host = o.addresses[0] ?: "127.0.0.1";
        printf("Made a domain set-up in %s:\n"
               "  ca.pem, ca.key          certificate authority (EC P-256, 10 years); clients need ca.pem\n"
               "  server.pem, server.key  server certificate for %s%s",
               dir, o.name, streq(o.name, "localhost") ? "" : ", localhost");
        for (char **a = o.addresses; *a; a++)
                printf(", %s", *a);
        printf("\n"
               "  admin-token             admin credential (mode 0600)\n"
               "  publisher.key           package publisher key, Ed25519 (mode 0600)\n"
               "  publisher.pub           its public key, trusted by the domain: %s\n"
               "  domain.conf             the configuration, listening on %s port %u\n"
               "  state/                  the domain's state directory\n"
               "\nNext:\n"
               "  rethink-domain --config=%s/domain.conf\n"
               "  export RETHINK_DOMAIN_URL=https://%s%s%s:%u RETHINK_CA_FILE=%s/ca.pem \\\n"
               "         RETHINK_ADMIN_TOKEN_FILE=%s/admin-token\n"
               "  rethinkctl publish PACKAGE --descriptor=DESCRIPTOR.json --publisher-key=%s/publisher.key\n"
               "  rethinkctl devices\n",
               publisher, o.listen, o.port, dir, strchr(host, ':') ? "[" : "", host,
               strchr(host, ':') ? "]" : "", o.port, dir, dir, dir);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}
