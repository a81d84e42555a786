/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethinkctl: the command line for people, talking to rethink-agent's
 * control socket (docs/control.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent-client.h"
#include "ctl-output.h"
#include "ctlproto.h"
#include "verbs.h"
#include "log.h"
#include "macro.h"

#ifndef RETHINK_VERSION
#include "version.h"
#endif

#define DEFAULT_SOCKET "/run/rethink/agent.sock"
#define DEFAULT_TIMEOUT_USEC (10ULL * 1000000ULL)

static const char *arg_socket;
enum json_mode arg_json = JSON_OFF;
uint64_t arg_timeout_usec = DEFAULT_TIMEOUT_USEC;
bool arg_force;
const char *arg_init_name, *arg_init_listen;
char **arg_init_addresses;
uint16_t arg_init_port = 8443;
const char *arg_domain_url, *arg_ca_file, *arg_admin_token_file;
const char *arg_descriptor, *arg_publisher_key, *arg_application;
char **arg_hyperties, **arg_protostubs;
const char *arg_password_file;

static void free_lists(void) {
        freestrvp(&arg_init_addresses);
        freestrvp(&arg_hyperties);
        freestrvp(&arg_protostubs);
}

static int strv_append(char ***l, const char *s) {
        size_t n = 0;
        char **p;

        while (*l && (*l)[n])
                n++;
        p = realloc(*l, (n + 2) * sizeof(char *));
        if (!p)
                return -ENOMEM;
        *l = p;
        p[n] = strdup(s);
        p[n + 1] = NULL;
        return p[n] ? 0 : -ENOMEM;
}

/* activate, deactivate and uninstall: NAME on this device's agent, or
 * ENDPOINT NAME through the domain. */
static int verb_component_or_device_order(int argc, char **argv) {
        return argc == 2 ? verb_component_order(argc, argv) : verb_device_order(argc, argv);
}

static uint64_t realtime_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/* --- talking to the agent ------------------------------------------------------ */

/* Calls command and hands back its result. Every failure is reported here,
 * so verbs just return EXIT_FAILED. */
int call_agent(const char *command, json_t *args, json_t **ret_result) {
        _cleanup_agent_client_ agent_client *c = NULL;
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        int r;

        r = agent_client_connect(arg_socket, arg_timeout_usec, &c);
        if (r == -ENOENT || r == -ECONNREFUSED) {
                fprintf(stderr, "Failed to connect to %s: %s. Is rethink-agent running?\n", arg_socket,
                        strerror(-r));
                return -r;
        }
        if (r == -EACCES || r == -EPERM) {
                fprintf(stderr, "Failed to connect to %s: %s. Are you root or in group \"rethink\"?\n",
                        arg_socket, strerror(-r));
                return -r;
        }
        if (r == -ETIMEDOUT) {
                fprintf(stderr, "Failed to connect to %s: the agent did not accept the connection in time.\n",
                        arg_socket);
                return -r;
        }
        if (r < 0) {
                fprintf(stderr, "Failed to connect to %s: %s\n", arg_socket, strerror(-r));
                return -r;
        }

        r = agent_client_call(c, command, args, arg_timeout_usec, &reply);
        if (r == -ETIMEDOUT) {
                fprintf(stderr, "Timed out waiting for rethink-agent to answer \"%s\".\n", command);
                return -r;
        }
        if (r == -ECONNRESET) {
                fprintf(stderr, "rethink-agent closed the connection before answering \"%s\".\n", command);
                return -r;
        }
        if (r == -EBADMSG) {
                fprintf(stderr, "rethink-agent sent an invalid reply to \"%s\".\n", command);
                return -r;
        }
        if (r < 0) {
                fprintf(stderr, "Failed to call \"%s\": %s\n", command, strerror(-r));
                return -r;
        }
        if (!ctl_reply_is_ok(reply)) {
                fprintf(stderr, "Command \"%s\" failed: %s (error %d)\n", command,
                        ctl_reply_get_error_description(reply), ctl_reply_get_error_code(reply));
                return EBADE;
        }

        *ret_result = json_incref(ctl_reply_get_result(reply));
        return 0;
}

int print_json(json_t *result) {
        _cleanup_free_ char *s = NULL;

        s = json_dumps(result, arg_json == JSON_PRETTY ? JSON_INDENT(2) : JSON_COMPACT);
        if (!s) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILED;
        }
        puts(s);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* --- reading results ----------------------------------------------------------- */

/* Accessors that tolerate a missing or mistyped field: an older or newer
 * agent should still give readable output. */
const char *jstr(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

uint64_t juint(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;
}

int jbool(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_boolean(v) ? json_is_true(v) : -1;
}

/* Prints "     Label: value suffix"; control characters in the agent's text
 * are shown as blanks, so it cannot drive the terminal. */
static void print_field(const char *label, const char *color, const char *value, const char *suffix) {
        _cleanup_free_ char *v = strdup(strna(value)), *sfx = strdup(suffix ?: "");

        if (!v || !sfx)
                return;
        for (char *q = v; *q; q++)
                if ((unsigned char) *q < 0x20 || *q == 0x7f)
                        *q = ' ';
        for (char *q = sfx; *q; q++)
                if ((unsigned char) *q < 0x20 || *q == 0x7f)
                        *q = ' ';
        printf("%14s: %s%s%s%s\n", label, color ?: "", v, color && *color ? color_reset() : "", sfx);
}

/* "online since Sat 2026-11-21 23:35:23 UTC; 3min ago" */
static void print_state_line(const char *label, const char *state, uint64_t since_usec) {
        char ts[FORMAT_TIMESTAMP_MAX], rel[FORMAT_TIMESPAN_MAX + 8], suffix[160] = "";

        if (since_usec > 0)
                snprintf(suffix, sizeof(suffix), " since %s; %s", format_timestamp(ts, sizeof(ts), since_usec),
                         format_relative(rel, sizeof(rel), since_usec, realtime_now_usec()));
        print_field(label, state_color(state), state, suffix);
}

static void print_gate(const char *label, json_t *gate) {
        int open = jbool(gate, "open");
        const char *reason = jstr(gate, "reason");
        char suffix[600] = "";

        if (reason && *reason)
                snprintf(suffix, sizeof(suffix), " (%s)", reason);
        print_field(label, open < 0 ? "" : good_color(open), open < 0 ? "n/a" : open ? "open" : "closed",
                    suffix);
}

/* --- verbs ------------------------------------------------------------------------ */

static int verb_status(int argc, char **argv) {
        json_auto_t *result = NULL;
        char span[FORMAT_TIMESPAN_MAX], pid[32], n[32], suffix[600] = "";
        const char *bpf, *bpf_reason, *status_text;

        if (call_agent("status", NULL, &result) != 0)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(result);

        bpf = jstr(result, "bpf");
        bpf_reason = jstr(result, "bpf_reason");
        status_text = jstr(result, "status_text");
        snprintf(pid, sizeof(pid), "%" PRIu64, juint(result, "pid"));
        snprintf(n, sizeof(n), "%" PRIu64, juint(result, "interfaces"));
        if (bpf_reason && *bpf_reason)
                snprintf(suffix, sizeof(suffix), " (%s)", bpf_reason);

        print_field("QoS", state_color(jstr(result, "qos")), jstr(result, "qos"), NULL);
        print_field("BPF", bpf && streq(bpf, "enabled") ? good_color(true) : state_color("degraded"), bpf,
                    suffix);
        print_field("Status", NULL, status_text && *status_text ? status_text : NULL, NULL);
        print_field("Version", NULL, jstr(result, "version"), NULL);
        print_field("PID", NULL, pid, NULL);
        print_field("Uptime", NULL, format_timespan(span, sizeof(span), juint(result, "uptime_usec") / 1000000ULL * 1000000ULL), NULL);
        print_field("Interfaces", NULL, n, NULL);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

static int add_interface_row(table *t, json_t *l, uint64_t now) {
        char rel[FORMAT_TIMESPAN_MAX + 8], rtt[FORMAT_TIMESPAN_MAX], loss[16], rx[FORMAT_RATE_MAX],
                tx[FORMAT_RATE_MAX];
        _cleanup_free_ char *addrs = NULL, *link = NULL;
        const char *state = jstr(l, "state"), *oper = jstr(l, "oper_state");
        json_t *a, *v;
        size_t i, n = 0;
        int r = 0, carrier = jbool(l, "carrier");

        /* "up", "down (no carrier)", "up, default route" */
        if (asprintf(&link, "%s%s%s%s", strna(oper), carrier == 0 ? ", no carrier" : "",
                     jbool(l, "default_route") == 1 ? ", default" : "", jbool(l, "metered") == 1 ? ", metered" : "") < 0)
                return -ENOMEM;

        a = json_object_get(l, "addresses");
        json_array_foreach(a, i, v) {
                char *p;

                if (!json_is_string(v))
                        continue;
                p = realloc(addrs, n + json_string_length(v) + 2);
                if (!p)
                        return -ENOMEM;
                addrs = p;
                n += (size_t) sprintf(addrs + n, "%s%s", n ? " " : "", json_string_value(v));
        }

        if (juint(l, "rtt_us") > 0)
                format_timespan(rtt, sizeof(rtt), juint(l, "rtt_us"));
        else
                snprintf(rtt, sizeof(rtt), "-");

        r = r ?: table_add_cell(t, jstr(l, "name"), NULL);
        r = r ?: table_add_cell(t, state, state_color(state));
        r = r ?: table_add_cell(t, format_relative(rel, sizeof(rel), juint(l, "since_usec"), now), NULL);
        r = r ?: table_add_cell(t, link, NULL);
        r = r ?: table_add_cell(t, rtt, NULL);
        r = r ?: table_add_cell(t, format_per_mille(loss, sizeof(loss), juint(l, "retrans_per_mille")), NULL);
        r = r ?: table_add_cell(t, format_rate(rx, sizeof(rx), juint(l, "rx_bps")), NULL);
        r = r ?: table_add_cell(t, format_rate(tx, sizeof(tx), juint(l, "tx_bps")), NULL);
        r = r ?: table_add_cell(t, addrs ?: "-", NULL);
        r = r ?: table_add_cell(t, jstr(l, "reason"), NULL);
        return r;
}

static int verb_qos(int argc, char **argv) {
        static const char *const headers[] = {
                "INTERFACE", "STATE", "SINCE", "LINK", "RTT", "RETRANS", "RX", "TX", "ADDRESSES", "REASON",
        };
        json_auto_t *result = NULL;
        _cleanup_table_ table *t = NULL;
        json_t *overall, *bpf, *gates, *primary, *interfaces, *l;
        char suffix[600] = "", prim[300];
        uint64_t now = realtime_now_usec();
        const char *reason;
        size_t i;
        int enabled, r = 0;

        if (call_agent("qos", NULL, &result) != 0)
                return EXIT_FAILED;
        if (arg_json != JSON_OFF)
                return print_json(result);

        overall = json_object_get(result, "overall");
        bpf = json_object_get(result, "bpf");
        gates = json_object_get(result, "gates");
        primary = json_object_get(result, "primary");
        interfaces = json_object_get(result, "interfaces");

        print_state_line("State", jstr(overall, "state"), juint(overall, "since_usec"));
        reason = jstr(overall, "reason");
        if (reason && *reason)
                print_field("Reason", NULL, reason, NULL);

        enabled = jbool(bpf, "enabled");
        reason = jstr(bpf, "reason");
        if (reason && *reason)
                snprintf(suffix, sizeof(suffix), " (%s)", reason);
        print_field("BPF", enabled == 1 ? good_color(true) : state_color("degraded"),
                    enabled == 1 ? "enabled" : enabled == 0 ? "netlink-only" : NULL, suffix);

        print_gate("Downloads", json_object_get(gates, "downloads"));
        print_gate("Registration", json_object_get(gates, "registration"));

        if (jstr(primary, "interface")) {
                if (jstr(primary, "address"))
                        snprintf(prim, sizeof(prim), "%s (%s)", jstr(primary, "interface"), jstr(primary, "address"));
                else
                        snprintf(prim, sizeof(prim), "%s", jstr(primary, "interface"));
                print_field("Primary", NULL, prim, NULL);
        } else
                print_field("Primary", NULL, "none", NULL);

        if (json_array_size(interfaces) == 0) {
                printf("\nNo interfaces watched.\n");
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
        }

        t = table_new_with_header(headers, ELEMENTSOF(headers));
        if (!t)
                return EXIT_FAILED;
        json_array_foreach(interfaces, i, l)
                if (r == 0 && json_is_object(l))
                        r = add_interface_row(t, l, now);
        if (r < 0) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILED;
        }
        putchar('\n');
        if (table_print(t, stdout) < 0 || fflush(stdout) != 0)
                return EXIT_FAILED;
        return EXIT_OK;
}

static const verb verbs[] = {
        { "status", 0, 0, verb_status, "", "Show the agent's state" },
        { "qos", 0, 0, verb_qos, "", "Show connectivity, QoS state, gates and interfaces" },
        { "components", 0, 0, verb_components, "", "List the components on the device" },
        { "install", 1, 1, verb_install, "DESCRIPTOR", "Install a component from its descriptor (JSON file)" },
        { "accept", 1, 1, verb_component_order, "NAME", "Consent to installing a delivered component" },
        { "reject", 1, 1, verb_component_order, "NAME", "Refuse a delivered component (cancel)" },
        { "activate", 1, 2, verb_component_or_device_order, "[EP] NAME", "Start an installed component" },
        { "deactivate", 1, 2, verb_component_or_device_order, "[EP] NAME", "Stop an active component" },
        { "uninstall", 1, 2, verb_component_or_device_order, "[EP] NAME", "Remove a component" },
        { "load-hyperty", 1, 1, verb_load_hyperty, "NAME|URL", "Run an installed hyperty; prints its address" },
        { "load-protostub", 1, 2, verb_load_protostub, "DOMAIN|URL [DOMAIN]",
          "Run the messaging protostub of a domain or a p2p protostub to a peer" },
        { "instances", 0, 0, verb_instances, "", "List the running component instances on the bus" },
        { "domain", 2, 2, verb_domain, "init DIR", "Make a domain set-up for a first try in DIR" },
        { "publish", 1, 1, verb_publish, "PACKAGE", "Sign a package and publish it with its descriptor" },
        { "devices", 0, 2, verb_devices, "[show|claim EP]", "List the domain's devices, show or claim one" },
        { "bootstrap", 1, 1, verb_bootstrap, "EP", "Order an application, hyperties, protostubs onto a device" },
        { "confirm", 2, 2, verb_device_order, "EP NAME", "Consent for a device to install a component" },
        { "cancel", 2, 2, verb_device_order, "EP NAME", "Cancel a component's installation on a device" },
        { "events", 0, 0, verb_events, "", "Follow the domain's device events until interrupted" },
        { "discover", 0, 1, verb_discover, "[KIND]", "Query the Global Registry: hyperties (default), dataobjects" },
        { "resources", 0, 0, verb_resources, "", "List the domain's M2M resources, reporters, last values" },
        /* Several lines for one verb, for --help; the first one is run. */
        { "user", 1, 2, verb_user, "login NAME", "Log a user of the domain in on this device" },
        { "user", 1, 2, verb_user, "list", "List the users logged in on this device" },
        { "user", 1, 2, verb_user, "logout NAME", "Log a user out on this device" },
        { "users", 0, 2, verb_users, "", "List the domain's users" },
        { "users", 0, 2, verb_users, "add|remove NAME", "Add a user to the domain, or remove one" },
};

/* --- command line ------------------------------------------------------------------ */

static void help(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Control rethink-agent, the reTHINK runtime user agent, and a domain's\n"
               "admin API.\n\n"
               "Commands:\n",
               program_invocation_short_name);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-11s %-16s %s\n", verbs[i].name, verbs[i].args_help, verbs[i].help);
        printf("\nOptions:\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --socket=PATH       The agent's control socket (default: $RETHINK_AGENT_SOCKET,\n"
               "                         else " DEFAULT_SOCKET ")\n"
               "     --json[=MODE]       Print the result as JSON: short (one line, the\n"
               "                         default) or pretty (indented)\n"
               "     --timeout=SEC       Give up after SEC seconds (default: 10)\n"
               "\nThe domain's admin API (publish, devices, bootstrap, confirm, cancel, events,\n"
               "discover, resources, users; activate, deactivate, uninstall with EP NAME):\n"
               "     --domain=URL        The domain, http(s)://HOST[:PORT], HOST numeric or\n"
               "                         localhost (default: $RETHINK_DOMAIN_URL)\n"
               "     --ca-file=PEM       CA certificates to verify the domain with (default:\n"
               "                         $RETHINK_CA_FILE, else the system's)\n"
               "     --admin-token-file=PATH\n"
               "                         The admin credential (default: $RETHINK_ADMIN_TOKEN_FILE)\n"
               "     --descriptor=FILE   publish: the package's descriptor (JSON)\n"
               "     --publisher-key=PEM publish: the publisher's Ed25519 private key\n"
               "     --application=NAME  bootstrap: the application (a hyperty)\n"
               "     --hyperty=NAME      bootstrap: a hyperty; repeat for more\n"
               "     --protostub=NAME    bootstrap: a protocol stub; repeat for more\n"
               "     --resource=TYPE     discover: entries offering this resource type\n"
               "     --scheme=SCHEME     discover: entries with this data scheme\n"
               "     --user=URL          discover: entries of this user (user://IDP/ID)\n"
               "     --tag=TAG           discover: entries with this tag\n"
               "     --status=STATUS     discover: live or disconnected\n"
               "     --prefix=URL        resources: those at or below this ctxt:// address\n"
               "     --limit=N           discover, resources: entries per page\n"
               "     --cursor=NEXT       discover, resources: the page after NEXT\n"
               "     --all               discover, resources: every page, not just the first\n"
               "\nuser login, users add:\n"
               "     --password-file=PATH\n"
               "                         Read the password from PATH (default: ask on the\n"
               "                         terminal without echo, else read a line from stdin)\n"
               "\ndomain init:\n"
               "     --name=NAME         DNS name for the server certificate (default: localhost)\n"
               "     --address=IP        IP address for the server certificate; repeat for more\n"
               "                         (default: 127.0.0.1 and ::1)\n"
               "     --listen=IP         Address the domain listens on (default: ::)\n"
               "     --port=PORT         Port the domain listens on (default: 8443)\n"
               "     --force             Replace an existing set-up\n"
               "\nExit status: 0 success, 1 failure (agent or domain unreachable, error reply or\nrefusal, timeout), "
               "2 wrong usage.\n");
}

/* Seconds, possibly with a fraction: "10", "0.5". */
static int parse_timeout(const char *s, uint64_t *ret) {
        char *end;
        double d;

        errno = 0;
        d = strtod(s, &end);
        if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d <= 0 || d > 86400.0)
                return -EINVAL;
        *ret = (uint64_t) (d * 1e6);
        if (*ret == 0)
                *ret = 1;
        return 0;
}

static int parse_argv(int argc, char **argv) {
        enum {
                ARG_VERSION = 0x100,
                ARG_SOCKET,
                ARG_JSON,
                ARG_TIMEOUT,
                ARG_NAME,
                ARG_ADDRESS,
                ARG_LISTEN,
                ARG_PORT,
                ARG_FORCE,
                ARG_DOMAIN,
                ARG_CA_FILE,
                ARG_ADMIN_TOKEN_FILE,
                ARG_DESCRIPTOR,
                ARG_PUBLISHER_KEY,
                ARG_APPLICATION,
                ARG_HYPERTY,
                ARG_PROTOSTUB,
                ARG_PASSWORD_FILE,
                ARG_RESOURCE,
                ARG_SCHEME,
                ARG_USER,
                ARG_TAG,
                ARG_STATUS,
                ARG_PREFIX,
                ARG_LIMIT,
                ARG_CURSOR,
                ARG_ALL,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "json", optional_argument, NULL, ARG_JSON },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "name", required_argument, NULL, ARG_NAME },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "port", required_argument, NULL, ARG_PORT },
                { "force", no_argument, NULL, ARG_FORCE },
                { "domain", required_argument, NULL, ARG_DOMAIN },
                { "ca-file", required_argument, NULL, ARG_CA_FILE },
                { "admin-token-file", required_argument, NULL, ARG_ADMIN_TOKEN_FILE },
                { "descriptor", required_argument, NULL, ARG_DESCRIPTOR },
                { "publisher-key", required_argument, NULL, ARG_PUBLISHER_KEY },
                { "application", required_argument, NULL, ARG_APPLICATION },
                { "hyperty", required_argument, NULL, ARG_HYPERTY },
                { "protostub", required_argument, NULL, ARG_PROTOSTUB },
                { "password-file", required_argument, NULL, ARG_PASSWORD_FILE },
                { "resource", required_argument, NULL, ARG_RESOURCE },
                { "scheme", required_argument, NULL, ARG_SCHEME },
                { "user", required_argument, NULL, ARG_USER },
                { "tag", required_argument, NULL, ARG_TAG },
                { "status", required_argument, NULL, ARG_STATUS },
                { "prefix", required_argument, NULL, ARG_PREFIX },
                { "limit", required_argument, NULL, ARG_LIMIT },
                { "cursor", required_argument, NULL, ARG_CURSOR },
                { "all", no_argument, NULL, ARG_ALL },
                {},
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("rethinkctl %s\n", RETHINK_VERSION);
                        return 0;
                case ARG_SOCKET:
                        if (optarg[0] != '/') {
                                fprintf(stderr, "--socket= needs an absolute path: %s\n", optarg);
                                return -EINVAL;
                        }
                        arg_socket = optarg;
                        break;
                case ARG_JSON:
                        if (!optarg || streq(optarg, "short"))
                                arg_json = JSON_SHORT;
                        else if (streq(optarg, "pretty"))
                                arg_json = JSON_PRETTY;
                        else {
                                fprintf(stderr, "Unknown --json= mode \"%s\"; use short or pretty.\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &arg_timeout_usec) < 0) {
                                fprintf(stderr, "Invalid --timeout= \"%s\": expected seconds, e.g. 10 or 0.5.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_NAME:
                        arg_init_name = optarg;
                        break;
                case ARG_ADDRESS: {
                        unsigned char buf[sizeof(struct in6_addr)];

                        if (inet_pton(AF_INET, optarg, buf) != 1 && inet_pton(AF_INET6, optarg, buf) != 1) {
                                fprintf(stderr, "Invalid --address= \"%s\": expected a numeric IP address.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        if (strv_append(&arg_init_addresses, optarg) < 0)
                                return -ENOMEM;
                        break;
                }
                case ARG_LISTEN: {
                        unsigned char buf[sizeof(struct in6_addr)];

                        if (inet_pton(AF_INET, optarg, buf) != 1 && inet_pton(AF_INET6, optarg, buf) != 1) {
                                fprintf(stderr, "Invalid --listen= \"%s\": expected a numeric IP address.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        arg_init_listen = optarg;
                        break;
                }
                case ARG_PORT: {
                        char *end;
                        unsigned long p;

                        errno = 0;
                        p = strtoul(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || p == 0 || p > 65535 || optarg[0] == '-') {
                                fprintf(stderr, "Invalid --port= \"%s\": expected 1-65535.\n", optarg);
                                return -EINVAL;
                        }
                        arg_init_port = (uint16_t) p;
                        break;
                }
                case ARG_FORCE:
                        arg_force = true;
                        break;
                case ARG_DOMAIN:
                        arg_domain_url = optarg;
                        break;
                case ARG_CA_FILE:
                        arg_ca_file = optarg;
                        break;
                case ARG_ADMIN_TOKEN_FILE:
                        arg_admin_token_file = optarg;
                        break;
                case ARG_DESCRIPTOR:
                        arg_descriptor = optarg;
                        break;
                case ARG_PUBLISHER_KEY:
                        arg_publisher_key = optarg;
                        break;
                case ARG_APPLICATION:
                        arg_application = optarg;
                        break;
                case ARG_HYPERTY:
                        if (strv_append(&arg_hyperties, optarg) < 0)
                                return -ENOMEM;
                        break;
                case ARG_PROTOSTUB:
                        if (strv_append(&arg_protostubs, optarg) < 0)
                                return -ENOMEM;
                        break;
                case ARG_PASSWORD_FILE:
                        arg_password_file = optarg;
                        break;
                case ARG_RESOURCE:
                        arg_resource = optarg;
                        break;
                case ARG_SCHEME:
                        arg_scheme = optarg;
                        break;
                case ARG_USER:
                        arg_user = optarg;
                        break;
                case ARG_TAG:
                        arg_tag = optarg;
                        break;
                case ARG_STATUS:
                        arg_status = optarg;
                        break;
                case ARG_PREFIX:
                        arg_prefix = optarg;
                        break;
                case ARG_LIMIT: {
                        char *end;
                        unsigned long n;

                        errno = 0;
                        n = strtoul(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || n == 0 || n > 1000 || optarg[0] == '-') {
                                fprintf(stderr, "Invalid --limit= \"%s\": expected 1-1000.\n", optarg);
                                return -EINVAL;
                        }
                        arg_limit = (unsigned) n;
                        break;
                }
                case ARG_CURSOR:
                        arg_cursor = optarg;
                        break;
                case ARG_ALL:
                        arg_all = true;
                        break;
                case '?':
                        if (optopt > 0 && optopt < 0x80)
                                fprintf(stderr, "Unknown option -%c or missing argument. See --help.\n", optopt);
                        else
                                fprintf(stderr, "Unknown option %s or missing argument. See --help.\n",
                                        argv[optind - 1]);
                        return -EINVAL;
                default:
                        return -EINVAL;
                }
        return 1;
}

int main(int argc, char **argv) {
        const verb *v = NULL;
        const char *name;
        unsigned n_args;
        int r;

        log_open();
        atexit(free_lists);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_OK;

        if (!arg_socket)
                arg_socket = getenv("RETHINK_AGENT_SOCKET") ?: DEFAULT_SOCKET;
        if (arg_socket[0] != '/') {
                fprintf(stderr, "$RETHINK_AGENT_SOCKET needs an absolute path: %s\n", arg_socket);
                return EXIT_USAGE;
        }

        if (!arg_domain_url)
                arg_domain_url = getenv("RETHINK_DOMAIN_URL");
        if (!arg_ca_file)
                arg_ca_file = getenv("RETHINK_CA_FILE");
        if (!arg_admin_token_file)
                arg_admin_token_file = getenv("RETHINK_ADMIN_TOKEN_FILE");

        if (optind >= argc) {
                fprintf(stderr, "No command given. See --help.\n");
                return EXIT_USAGE;
        }
        name = argv[optind];
        for (size_t i = 0; i < ELEMENTSOF(verbs) && !v; i++)
                if (streq(verbs[i].name, name))
                        v = verbs + i;
        if (!v) {
                fprintf(stderr, "Unknown command \"%s\". See --help.\n", name);
                return EXIT_USAGE;
        }
        n_args = (unsigned) (argc - optind - 1);
        if (n_args < v->min_args || n_args > v->max_args) {
                fprintf(stderr, "Command \"%s\" takes %s%u argument%s. See --help.\n", name,
                        v->min_args == v->max_args ? "" : n_args < v->min_args ? "at least " : "at most ",
                        n_args < v->min_args ? v->min_args : v->max_args,
                        (n_args < v->min_args ? v->min_args : v->max_args) == 1 ? "" : "s");
                return EXIT_USAGE;
        }

        return v->run(argc - optind, argv + optind);
}
