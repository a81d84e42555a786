/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What rethinkctl's verbs share: the exit codes, the global options, the
 * call to the agent and the JSON accessors. The verbs live in verbs-*.c,
 * grouped by what they talk to; main.c parses the command line. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "domain-client.h"

/* Exit codes, documented in --help and docs/control.md. */
enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1, /* error reply, agent or domain unreachable, timeout */
        EXIT_USAGE = 2,
};

enum json_mode {
        JSON_OFF,
        JSON_SHORT,
        JSON_PRETTY,
};

typedef struct verb {
        const char *name;
        unsigned min_args, max_args; /* after the verb itself */
        int (*run)(int argc, char **argv);
        const char *args_help;
        const char *help;
} verb;

extern enum json_mode arg_json;
extern uint64_t arg_timeout_usec;
extern bool arg_force;
/* domain init */
extern const char *arg_init_name, *arg_init_listen;
extern char **arg_init_addresses;
extern uint16_t arg_init_port;
/* the domain's admin API */
extern const char *arg_domain_url, *arg_ca_file, *arg_admin_token_file;
extern const char *arg_descriptor, *arg_publisher_key, *arg_application;
extern char **arg_hyperties, **arg_protostubs;

/* Calls command on the agent and hands back its result. Every failure is
 * reported on stderr, so verbs just return EXIT_FAILED when this fails. */
int call_agent(const char *command, json_t *args, json_t **ret_result);
/* Prints result as --json asked; returns an exit code. */
int print_json(json_t *result);

/* Accessors that tolerate a missing or mistyped field. */
const char *jstr(json_t *o, const char *key);
uint64_t juint(json_t *o, const char *key);
int jbool(json_t *o, const char *key);

/* verbs-components.c: the software manager on the device. */
int verb_components(int argc, char **argv);
int verb_install(int argc, char **argv);
int verb_component_order(int argc, char **argv);

/* verbs-runtime.c: the runtime APIs and the running instances. */
int verb_load_hyperty(int argc, char **argv);
int verb_load_protostub(int argc, char **argv);
int verb_instances(int argc, char **argv);

/* verbs-domain.c: a domain set-up. */
int verb_domain(int argc, char **argv);

/* verbs-admin.c: a domain's admin API. The helpers report every failure
 * on stderr: connect to --domain= with the admin credential, one request
 * (2xx or a failure; what: "add the user", for messages), the answer as
 * JSON. */
int open_domain(domain_client **ret);
int domain_request(domain_client *c, const char *method, const char *path, const char *content_type,
                   const void *body, size_t size, const char *what, domain_response **ret);
json_t *response_json(domain_response *resp, const char *what);
int verb_publish(int argc, char **argv);
int verb_devices(int argc, char **argv);
int verb_bootstrap(int argc, char **argv);
int verb_device_order(int argc, char **argv);
int verb_events(int argc, char **argv);
/* discover: the Global Registry; resources: the M2M Resource Directory.
 * Their options (0/NULL/false when not given). */
extern const char *arg_resource, *arg_scheme, *arg_user, *arg_tag, *arg_status, *arg_cursor, *arg_prefix;
extern unsigned arg_limit;
extern bool arg_all;
int verb_discover(int argc, char **argv);
int verb_resources(int argc, char **argv);

/* verbs-users.c: end users, on the device (user) and at the domain (users). */
extern const char *arg_password_file;
int verb_user(int argc, char **argv);
int verb_users(int argc, char **argv);
