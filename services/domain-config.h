/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* rethink-domain's configuration: /etc/rethink/domain.conf (or
 * --config=PATH), then the command-line flags, which override the file.
 * Every key has a flag; units/conf/domain.conf documents them all.
 *
 * As for the agent, loading is all-or-nothing (a bad file on reload leaves
 * the running configuration alone), unknown sections and keys are errors,
 * the last assignment wins and an empty one restores the default. Errors
 * name the place and the key:
 *   domain.conf:7: [HTTP] Port=http: not a number
 *   --port=http: not a number ([HTTP] Port)
 * Rules that tie keys together are checked after everything is applied:
 *   domain.conf: [HTTP] Listen=0.0.0.0: cleartext h2c is only allowed on a
 *   loopback address; set [HTTP] Certificate= and PrivateKey= */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#ifndef RETHINK_VERSION
#include "version.h"
#endif

#define DOMAIN_CONFIG_FILE_DEFAULT "/etc/rethink/domain.conf"
#define DOMAIN_STATE_DIRECTORY_DEFAULT "/var/lib/rethink-domain"

typedef struct domain_config domain_config;

int domain_config_new(domain_config **ret);
domain_config *domain_config_free(domain_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(domain_config *, domain_config_free);
#define _cleanup_domain_config_ _cleanup_(domain_config_freep)

/* Returns 0, DOMAIN_CONFIG_ARGV_EXIT after --help/--version, or -EINVAL
 * with *ret_error (to be freed). */
#define DOMAIN_CONFIG_ARGV_EXIT 1
int domain_config_parse_argv(domain_config *c, int argc, char *argv[], char **ret_error);

/* A fresh configuration from the defaults, the file at template's path and
 * template's flags; also reads [Admin] TokenFile=. A missing file is fine
 * at the default path, an error when --config named it. *ret is untouched
 * on failure; *ret_error says why (to be freed). */
int domain_config_load(const domain_config *template, domain_config **ret, char **ret_error);
/* The same from text, as if it were the file at path (tests). */
int domain_config_load_string(const domain_config *template, const char *path, const char *text,
                              domain_config **ret, char **ret_error);

const char *domain_config_get_path(const domain_config *c);
int domain_config_get_log_level(const domain_config *c);
const char *domain_config_get_state_directory(const domain_config *c);
/* The domain's DNS name ([Domain] Name=, "localhost" by default). */
const char *domain_config_get_name(const domain_config *c);
/* Numeric address; "::" by default. */
const char *domain_config_get_listen(const domain_config *c);
uint16_t domain_config_get_port(const domain_config *c);
/* Both NULL: h2c (only on loopback, see above). */
const char *domain_config_get_certificate(const domain_config *c);
const char *domain_config_get_private_key(const domain_config *c);
unsigned domain_config_get_max_connections(const domain_config *c);
unsigned domain_config_get_max_concurrent_streams(const domain_config *c);
uint64_t domain_config_get_request_timeout_usec(const domain_config *c);
uint64_t domain_config_get_idle_timeout_usec(const domain_config *c);
uint64_t domain_config_get_shutdown_grace_usec(const domain_config *c);
/* The admin bearer credential read from [Admin] TokenFile=, or NULL when
 * none is configured (the admin API then refuses everyone). */
const char *domain_config_get_admin_token(const domain_config *c);
/* NULL-terminated list of base64url Ed25519 public keys; empty when unset. */
char *const *domain_config_get_trusted_publishers(const domain_config *c);
uint64_t domain_config_get_max_package_size(const domain_config *c);
unsigned domain_config_get_default_lifetime_sec(const domain_config *c);
unsigned domain_config_get_min_lifetime_sec(const domain_config *c);
unsigned domain_config_get_max_lifetime_sec(const domain_config *c);

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool domain_address_is_loopback(const char *address);
