/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* `rethinkctl domain init DIR`: a working rethink-domain set-up for a first
 * try, made with OpenSSL's C API and lib/sign:
 *
 *   DIR/ca.pem, DIR/ca.key            CA, EC P-256, self-signed, 10 years
 *   DIR/server.pem, DIR/server.key    server certificate signed by the CA,
 *                                     SANs: the name, "localhost" and the
 *                                     addresses
 *   DIR/admin-token                   admin bearer credential (random)
 *   DIR/publisher.key, publisher.pub  package publisher, Ed25519
 *   DIR/domain.conf                   points at all of the above
 *   DIR/state/                        the domain's state directory
 *
 * Keys and the credential are written with mode 0600, atomically. */

#include <stdbool.h>
#include <stdint.h>

#define DOMAIN_INIT_CA_DAYS 3650
#define DOMAIN_INIT_SERVER_DAYS 825

typedef struct domain_init_options {
        const char *dir;               /* created if missing */
        const char *name;              /* DNS name of the server certificate */
        char **addresses;              /* NULL-terminated IP addresses for the certificate */
        const char *listen;            /* [HTTP] Listen= */
        uint16_t port;                 /* [HTTP] Port= */
        bool force;                    /* replace an existing set-up */
} domain_init_options;

/* The files of a set-up, relative to DIR; NULL-terminated. */
extern const char *const domain_init_files[];

/* Fails with -EEXIST when DIR already holds one of domain_init_files (and
 * force is off; nothing is written then), -EINVAL for a name or address
 * that cannot go into a certificate, or the errno of a failed write. On
 * success *ret_publisher (may be NULL) gets the publisher's public key,
 * base64url. */
int domain_init(const domain_init_options *o, char **ret_publisher);

/* True if s is a DNS name a certificate may carry: letters, digits, '-'
 * and dots, labels of 1-63 characters, at most 253 in all. */
bool domain_init_name_is_valid(const char *s);
