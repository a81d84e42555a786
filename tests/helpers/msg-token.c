/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Prints an access token signed with a domain's IdM key, for the
 * Messaging Service's shell tests and benchmark (which drive sessions
 * with clients we did not write and need a bearer token for them):
 *
 *   msg-token KEY.pem DOMAIN SUBJECT [SCOPE]
 *
 * iss = aud = DOMAIN, scope "runtime" unless given, valid for an hour. */

#include <stdio.h>

#include "token.h"

int main(int argc, char **argv) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_free_ char *token = NULL;
        int r;

        if (argc < 4 || argc > 5) {
                fprintf(stderr, "usage: msg-token KEY.pem DOMAIN SUBJECT [SCOPE]\n");
                return 2;
        }
        r = token_key_load_private_pem(argv[1], &k);
        if (r >= 0)
                r = token_issue(k,
                                &(token_issue_params) { .issuer = argv[2], .audience = argv[2], .subject = argv[3],
                                                        .scope = argc > 4 ? argv[4] : "runtime",
                                                        .lifetime = USEC_PER_HOUR },
                                &token);
        if (r < 0) {
                fprintf(stderr, "msg-token: %s\n", strerror(-r));
                return 1;
        }
        printf("%s\n", token);
        return 0;
}
