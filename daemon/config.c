/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "descriptor.h"
#include "fileio.h"
#include "identity.h"
#include "ini.h"
#include "launcher.h"
#include "log.h"
#include "registration-session.h"
#include "registration.h"

#define CONFIG_FILE_MAX (1024 * 1024)

typedef enum key_type {
        T_UINT,
        T_BOOL,
        T_LEVEL,
        T_SOCKET,
        T_IFLIST,
        T_PATH,
        T_URL,          /* optional; registration_url_parse() */
        T_ENDPOINT,     /* optional; identity_endpoint_is_valid() */
        T_DOMAIN_NAME,  /* optional; reg_session_domain_name_is_valid() */
        T_LAUNCHER,     /* launcher_mode_from_string() */
        T_IP,           /* optional; numeric IPv4 or IPv6 */
        T_COMPONENT,    /* required; descriptor_name_is_valid() */
} key_type;

typedef struct config_key {
        const char *section;
        const char *key;
        const char *flag;
        key_type type;
        size_t offset;
        unsigned min, max;
        const char *def;
        const char *help;
} config_key;

typedef struct override {
        const config_key *key;
        char *value;
} override;

struct agent_config {
        char *path;
        bool path_from_flag;
        override *overrides;
        size_t n_overrides;

        int log_level;
        char *control_socket;
        char *bus_socket;
        char **watch;
        char **metered;
        unsigned rtt_ms;
        unsigned retrans_per_mille;
        unsigned rto_threshold;
        unsigned rto_window_sec;
        unsigned degrade_after_sec;
        unsigned degrade_after_samples;
        unsigned recover_after_sec;
        unsigned recover_after_samples;
        unsigned poll_interval_sec;
        unsigned sample_interval_sec;
        bool downloads_on_metered;
        bool bpf;
        char *cgroup_path;
        char *state_directory;
        char *trusted_publishers;
        int launcher_mode;
        unsigned restart_initial_sec;
        unsigned restart_max_sec;
        unsigned restart_burst;
        char *messaging_stub;
        char *p2p_stub;
        unsigned registry_lifetime_sec;
        char *domain_url;
        char *domain_ca_file;
        char *domain_endpoint;
        char *domain_name;
        unsigned domain_lifetime_sec;
        unsigned domain_retry_max_sec;
        char *local_rd_listen;
        unsigned local_rd_port;
        char *local_rd_certificate;
        char *local_rd_key;
        bool local_rd_cleartext;
};

#define F(field) offsetof(struct agent_config, field)

/* The one table of keys: file sections and names, flags, types, ranges and
 * defaults. Defaults are strings run through the same parsers as the file,
 * so an empty assignment can reset a key. */
static const config_key keys[] = {
        { "Agent", "LogLevel", "log-level", T_LEVEL, F(log_level), 0, 0, "info",
          "Log threshold: debug, info, notice, warning, err" },
        { "Agent", "ControlSocket", "control-socket", T_SOCKET, F(control_socket), 0, 0,
          CONFIG_CONTROL_SOCKET_DEFAULT, "Control socket path" },
        { "Agent", "BusSocket", "bus-socket", T_SOCKET, F(bus_socket), 0, 0, CONFIG_BUS_SOCKET_DEFAULT,
          "Message bus socket the components connect to" },
        { "Interfaces", "Watch", "watch", T_IFLIST, F(watch), 0, 0, "",
          "Interfaces to watch (names, globs); empty: all but loopback" },
        { "Interfaces", "Metered", "metered", T_IFLIST, F(metered), 0, 0, "",
          "Metered interfaces (names, globs)" },
        { "QoS", "RttThresholdMs", "rtt-threshold-ms", T_UINT, F(rtt_ms), 1, 600000, "300",
          "RTT above which a link is degraded, in ms" },
        { "QoS", "RetransmitThresholdPerMille", "retransmit-threshold-per-mille", T_UINT,
          F(retrans_per_mille), 1, 1000, "50", "Retransmitted segments per 1000 sent above which a link is degraded" },
        { "QoS", "RtoThreshold", "rto-threshold", T_UINT, F(rto_threshold), 1, 64, "3",
          "RTO events within RtoWindowSec that degrade a link at once" },
        { "QoS", "RtoWindowSec", "rto-window-sec", T_UINT, F(rto_window_sec), 1, 3600, "10",
          "Window for RtoThreshold, in seconds" },
        { "QoS", "DegradeAfterSec", "degrade-after-sec", T_UINT, F(degrade_after_sec), 0, 3600, "5",
          "How long a bad condition must hold before DEGRADED" },
        { "QoS", "DegradeAfterSamples", "degrade-after-samples", T_UINT, F(degrade_after_samples), 1,
          1000, "3", "Consecutive bad samples before DEGRADED" },
        { "QoS", "RecoverAfterSec", "recover-after-sec", T_UINT, F(recover_after_sec), 0, 3600, "30",
          "How long the condition must stay clear before leaving DEGRADED" },
        { "QoS", "RecoverAfterSamples", "recover-after-samples", T_UINT, F(recover_after_samples), 1,
          1000, "5", "Consecutive good samples before leaving DEGRADED" },
        { "QoS", "PollIntervalSec", "poll-interval-sec", T_UINT, F(poll_interval_sec), 1, 3600, "2",
          "How often traffic and TCP counters are read, in seconds" },
        { "QoS", "SampleIntervalSec", "sample-interval-sec", T_UINT, F(sample_interval_sec), 0, 86400,
          "60", "Journal sample interval per interface, in seconds; 0: none" },
        { "Gate", "DownloadsOnMetered", "downloads-on-metered", T_BOOL, F(downloads_on_metered), 0, 0,
          "no", "Open the downloads gate on a metered interface" },
        { "BPF", "Enable", "bpf", T_BOOL, F(bpf), 0, 0, "yes",
          "Use eBPF for traffic and TCP statistics (else netlink only)" },
        { "BPF", "CgroupPath", "cgroup-path", T_PATH, F(cgroup_path), 0, 0, "",
          "cgroup v2 directory for sock_ops; empty: the agent's own cgroup" },
        { "Agent", "StateDirectory", "state-directory", T_PATH, F(state_directory), 0, 0,
          CONFIG_STATE_DIRECTORY_DEFAULT, "Persistent state (components.db, installed software)" },
        { "Software", "TrustedPublishers", "trusted-publishers", T_PATH, F(trusted_publishers), 0, 0,
          CONFIG_TRUSTED_PUBLISHERS_DEFAULT, "Directory of trusted publisher keys (NAME.pem, NAME.pub)" },
        { "Components", "Launcher", "launcher", T_LAUNCHER, F(launcher_mode), 0, 0, "auto",
          "How components run: auto, systemd (transient units), fork (child processes)" },
        { "Components", "RestartInitialSec", "restart-initial-sec", T_UINT, F(restart_initial_sec), 1, 3600, "1",
          "First delay before a component that exited is started again, in seconds" },
        { "Components", "RestartMaxSec", "restart-max-sec", T_UINT, F(restart_max_sec), 1, 86400, "60",
          "Longest delay between restarts of a component, in seconds" },
        { "Components", "RestartBurst", "restart-burst", T_UINT, F(restart_burst), 1, 1000, "5",
          "Exits within 5 minutes after which a component is not restarted any more" },
        { "Components", "MessagingProtostub", "messaging-protostub", T_COMPONENT, F(messaging_stub), 0, 0,
          "messaging", "The installed protostub that reaches the domain's Messaging Service" },
        { "Components", "P2PProtostub", "p2p-protostub", T_COMPONENT, F(p2p_stub), 0, 0, "p2p",
          "The installed protostub that reaches peers' Local M2M Resource Directories" },
        { "Components", "RegistryLifetimeSec", "registry-lifetime-sec", T_UINT, F(registry_lifetime_sec), 10,
          86400, "60", "Lifetime of the hyperties' Global Registry entries (kept alive at a third of it)" },
        { "Domain", "URL", "domain-url", T_URL, F(domain_url), 0, 0, "",
          "The domain to register with, https://IP[:PORT]; empty: no registration" },
        { "Domain", "Name", "domain-name", T_DOMAIN_NAME, F(domain_name), 0, 0, "",
          "The domain's name (runtime://NAME/..., IdM audience); empty: no messaging session" },
        { "Domain", "CAFile", "domain-ca-file", T_PATH, F(domain_ca_file), 0, 0, "",
          "CA certificate(s) the domain's TLS certificate is verified with" },
        { "Domain", "Endpoint", "endpoint", T_ENDPOINT, F(domain_endpoint), 0, 0, "",
          "Endpoint name; empty: the stored or derived one" },
        { "Domain", "LifetimeSec", "lifetime-sec", T_UINT, F(domain_lifetime_sec), 1, 2592000, "3600",
          "Registration lifetime asked for, in seconds" },
        { "Domain", "RetryMaxSec", "retry-max-sec", T_UINT, F(domain_retry_max_sec), 1, 86400, "600",
          "Longest wait between registration retries, in seconds" },
        { "LocalRD", "Listen", "local-rd-listen", T_IP, F(local_rd_listen), 0, 0, "",
          "Address the Local M2M Resource Directory listens on (numeric); empty: off" },
        { "LocalRD", "Port", "local-rd-port", T_UINT, F(local_rd_port), 1, 65535, "8444",
          "Port of the Local M2M Resource Directory" },
        { "LocalRD", "Certificate", "local-rd-certificate", T_PATH, F(local_rd_certificate), 0, 0, "",
          "TLS certificate (PEM) of the Local M2M Resource Directory" },
        { "LocalRD", "Key", "local-rd-key", T_PATH, F(local_rd_key), 0, 0, "",
          "TLS private key (PEM) of the Local M2M Resource Directory" },
        { "LocalRD", "Cleartext", "local-rd-cleartext", T_BOOL, F(local_rd_cleartext), 0, 0, "no",
          "Serve h2c without TLS (loopback addresses and tests only)" },
};

#define FIELD(c, k, type) ((type *) ((char *) (c) + (k)->offset))

static void strv_free(char **l) {
        freestrvp(&l);
}

static int parse_bool(const char *v) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

static bool valid_ifname_glob(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= IFNAMSIZ)
                return false;
        /* What the kernel refuses in a name can never match one. */
        return !strpbrk(s, "/:") && !streq(s, ".") && !streq(s, "..");
}

static int split_iflist(const char *v, char ***ret, char **ret_reason) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *copy = strdup(v);
        size_t n = 0;
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                char **a;

                if (!valid_ifname_glob(w)) {
                        if (asprintf(ret_reason, "invalid interface name or glob \"%s\"", w) < 0)
                                *ret_reason = NULL;
                        return -EINVAL;
                }
                a = reallocarray(l, n + 2, sizeof(char *));
                if (!a)
                        return -ENOMEM;
                l = a;
                l[n] = strdup(w);
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* Applies one value; on -EINVAL *ret_reason says why (to be freed). */
static int set_key(agent_config *c, const config_key *k, const char *value, char **ret_reason) {
        const char *v = *value ? value : k->def;
        char *reason = NULL;
        int r;

        switch (k->type) {
        case T_UINT: {
                unsigned long long n;
                char *end;

                if (!*v || v[0] == '-' || v[0] == '+' || v[0] == ' ') {
                        reason = strdup("not a number");
                        break;
                }
                errno = 0;
                n = strtoull(v, &end, 10);
                if (*end) {
                        reason = strdup("not a number");
                        break;
                }
                if (errno == ERANGE || n < k->min || n > k->max) {
                        if (asprintf(&reason, "out of range (%u-%u)", k->min, k->max) < 0)
                                reason = NULL;
                        break;
                }
                *FIELD(c, k, unsigned) = (unsigned) n;
                return 0;
        }
        case T_BOOL:
                r = parse_bool(v);
                if (r < 0) {
                        reason = strdup("not a boolean (yes/no)");
                        break;
                }
                *FIELD(c, k, bool) = r;
                return 0;
        case T_LEVEL:
                r = log_level_from_string(v);
                if (r < 0) {
                        reason = strdup("not a log level (debug, info, notice, warning, err)");
                        break;
                }
                *FIELD(c, k, int) = r;
                return 0;
        case T_SOCKET:
        case T_PATH: {
                char *s;

                if (*v && v[0] != '/') {
                        reason = strdup("not an absolute path");
                        break;
                }
                if (k->type == T_SOCKET && strlen(v) >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                        reason = strdup("path too long for a socket");
                        break;
                }
                if (strlen(v) >= PATH_MAX) {
                        reason = strdup("path too long");
                        break;
                }
                s = *v ? strdup(v) : NULL;
                if (*v && !s)
                        return -ENOMEM;
                free(*FIELD(c, k, char *));
                *FIELD(c, k, char *) = s;
                return 0;
        }
        case T_URL:
        case T_ENDPOINT:
        case T_DOMAIN_NAME: {
                char *s;

                if (k->type == T_URL && *v) {
                        registration_url u;
                        const char *why = NULL;

                        if (registration_url_parse(v, &u, &why) < 0) {
                                reason = strdup(why ?: "invalid URL");
                                break;
                        }
                }
                if (k->type == T_DOMAIN_NAME && *v && !reg_session_domain_name_is_valid(v)) {
                        reason = strdup("expected a lowercase DNS name or IP address");
                        break;
                }
                if (k->type == T_ENDPOINT && *v && !identity_endpoint_is_valid(v)) {
                        reason = strdup("expected 1-64 characters of [A-Za-z0-9._:-], starting with a letter or digit");
                        break;
                }
                s = *v ? strdup(v) : NULL;
                if (*v && !s)
                        return -ENOMEM;
                free(*FIELD(c, k, char *));
                *FIELD(c, k, char *) = s;
                return 0;
        }
        case T_COMPONENT: {
                char *s;

                if (!descriptor_name_is_valid(v)) {
                        reason = strdup("expected a component name: 1-64 characters of [A-Za-z0-9._-]");
                        break;
                }
                s = strdup(v);
                if (!s)
                        return -ENOMEM;
                free(*FIELD(c, k, char *));
                *FIELD(c, k, char *) = s;
                return 0;
        }
        case T_IP: {
                unsigned char buf[sizeof(struct in6_addr)];
                char *s;

                if (*v && inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1) {
                        reason = strdup("expected a numeric IPv4 or IPv6 address");
                        break;
                }
                s = *v ? strdup(v) : NULL;
                if (*v && !s)
                        return -ENOMEM;
                free(*FIELD(c, k, char *));
                *FIELD(c, k, char *) = s;
                return 0;
        }
        case T_LAUNCHER:
                r = launcher_mode_from_string(v);
                if (r < 0) {
                        reason = strdup("expected auto, systemd or fork");
                        break;
                }
                *FIELD(c, k, int) = r;
                return 0;
        case T_IFLIST: {
                char **l = NULL;

                r = split_iflist(v, &l, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        break;
                strv_free(*FIELD(c, k, char **));
                *FIELD(c, k, char **) = l;
                return 0;
        }
        }

        if (!reason)
                return -ENOMEM;
        *ret_reason = reason;
        return -EINVAL;
}

size_t config_n_keys(void) {
        return ELEMENTSOF(keys);
}

static const config_key *find_key(const char *section, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(keys[i].section, section) && streq(keys[i].key, key))
                        return &keys[i];
        return NULL;
}

static int apply_defaults(agent_config *c) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_free_ char *reason = NULL;
                int r = set_key(c, &keys[i], "", &reason);
                if (r < 0)
                        return r == -EINVAL ? -EIO : r; /* a broken default is a bug */
        }
        return 0;
}

int config_new(agent_config **ret) {
        _cleanup_config_ agent_config *c = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->path = strdup(CONFIG_FILE_DEFAULT);
        if (!c->path)
                return -ENOMEM;
        r = apply_defaults(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

agent_config *config_free(agent_config *c) {
        if (!c)
                return NULL;
        free(c->path);
        for (size_t i = 0; i < c->n_overrides; i++)
                free(c->overrides[i].value);
        free(c->overrides);
        free(c->control_socket);
        free(c->bus_socket);
        strv_free(c->watch);
        strv_free(c->metered);
        free(c->cgroup_path);
        free(c->state_directory);
        free(c->trusted_publishers);
        free(c->domain_url);
        free(c->domain_ca_file);
        free(c->domain_endpoint);
        free(c->messaging_stub);
        free(c->p2p_stub);
        free(c->domain_name);
        free(c->local_rd_listen);
        free(c->local_rd_certificate);
        free(c->local_rd_key);
        free(c);
        return NULL;
}

static int add_override(agent_config *c, const config_key *k, const char *value) {
        override *a;
        char *v = strdup(value);

        if (!v)
                return -ENOMEM;
        a = reallocarray(c->overrides, c->n_overrides + 1, sizeof(*a));
        if (!a) {
                free(v);
                return -ENOMEM;
        }
        c->overrides = a;
        c->overrides[c->n_overrides++] = (override) { .key = k, .value = v };
        return 0;
}

static int flag_error(const config_key *k, const char *value, const char *reason, char **ret_error) {
        if (asprintf(ret_error, "--%s=%s: %s ([%s] %s)", k->flag, value, reason, k->section, k->key) < 0)
                return -ENOMEM;
        return -EINVAL;
}

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "rethink Runtime User Agent: watches connectivity (netlink, eBPF) and gates\n"
               "downloads and registration on it.\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "  -c --config=PATH          Configuration file (default %s)\n",
               program_invocation_short_name, CONFIG_FILE_DEFAULT);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char opt[64];

                snprintf(opt, sizeof(opt), "--%s=", keys[i].flag);
                printf("     %-34s %s\n     %-34s [%s] %s, default \"%s\"\n", opt, keys[i].help, "",
                       keys[i].section, keys[i].key, keys[i].def);
        }
        printf("\nFlags override the file. See agent.conf for details.\n");
}

int config_parse_argv(agent_config *c, int argc, char *argv[], char **ret_error) {
        enum { ARG_VERSION = 0x100, ARG_KEY0 = 0x200 };
        struct option options[ELEMENTSOF(keys) + 4];
        size_t n = 0;
        int opt;

        if (!c || !ret_error)
                return -EINVAL;

        options[n++] = (struct option) { "help", no_argument, NULL, 'h' };
        options[n++] = (struct option) { "version", no_argument, NULL, ARG_VERSION };
        options[n++] = (struct option) { "config", required_argument, NULL, 'c' };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                options[n++] = (struct option) { keys[i].flag, required_argument, NULL, ARG_KEY0 + (int) i };
        options[n] = (struct option) {};

        /* Callers (and tests) may parse more than once. */
        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, ":hc:", options, NULL)) >= 0) {
                switch (opt) {
                case 'h':
                        help();
                        return CONFIG_ARGV_EXIT;
                case ARG_VERSION:
                        printf("rethink-agent %s\n", RETHINK_VERSION);
                        return CONFIG_ARGV_EXIT;
                case 'c': {
                        char *p;

                        if (!*optarg) {
                                if (asprintf(ret_error, "--config=: empty path") < 0)
                                        return -ENOMEM;
                                return -EINVAL;
                        }
                        p = strdup(optarg);
                        if (!p)
                                return -ENOMEM;
                        free(c->path);
                        c->path = p;
                        c->path_from_flag = true;
                        break;
                }
                case ':':
                        if (asprintf(ret_error, "%s: option needs a value", argv[optind - 1]) < 0)
                                return -ENOMEM;
                        return -EINVAL;
                case '?':
                        if (asprintf(ret_error, "%s: unknown option", argv[optind - 1]) < 0)
                                return -ENOMEM;
                        return -EINVAL;
                default: {
                        const config_key *k = &keys[opt - ARG_KEY0];
                        _cleanup_free_ char *reason = NULL;
                        int r;

                        r = set_key(c, k, optarg, &reason);
                        if (r == -EINVAL)
                                return flag_error(k, optarg, reason, ret_error);
                        if (r < 0)
                                return r;
                        r = add_override(c, k, optarg);
                        if (r < 0)
                                return r;
                }
                }
        }

        if (optind < argc) {
                if (asprintf(ret_error, "%s: unexpected argument", argv[optind]) < 0)
                        return -ENOMEM;
                return -EINVAL;
        }
        return 0;
}

typedef struct parse_ctx {
        agent_config *config;
        const char *path;
        char *error;
} parse_ctx;

static int on_assignment(const char *section, const char *key, const char *value, unsigned line,
                         void *userdata) {
        parse_ctx *ctx = userdata;
        const config_key *k = find_key(section, key);
        _cleanup_free_ char *reason = NULL;
        int r;

        if (!k)
                r = -EINVAL;
        else
                r = set_key(ctx->config, k, value, &reason);
        if (r == -EINVAL) {
                if (asprintf(&ctx->error, "%s:%u: [%s] %s=%s: %s", ctx->path, line, section, key, value,
                             reason ?: "unknown key") < 0)
                        ctx->error = NULL;
        }
        return r;
}

static int load(const agent_config *template, const char *text, size_t size, agent_config **ret,
                char **ret_error) {
        _cleanup_config_ agent_config *c = NULL;
        parse_ctx ctx = {};
        const char *reason = NULL;
        unsigned line = 0;
        int r;

        r = config_new(&c);
        if (r < 0)
                return r;
        free(c->path);
        c->path = strdup(template->path);
        if (!c->path)
                return -ENOMEM;
        c->path_from_flag = template->path_from_flag;

        ctx = (parse_ctx) { .config = c, .path = template->path };
        if (text) {
                r = ini_parse(text, size, on_assignment, &ctx, &line, &reason);
                if (r < 0) {
                        if (ctx.error)
                                *ret_error = ctx.error;
                        else if (reason) {
                                if (asprintf(ret_error, "%s:%u: %s", template->path, line, reason) < 0)
                                        return -ENOMEM;
                        } else
                                return r == -EINVAL ? -ENOMEM : r;
                        return -EINVAL;
                }
        }

        for (size_t i = 0; i < template->n_overrides; i++) {
                const override *o = &template->overrides[i];
                _cleanup_free_ char *why = NULL;

                r = set_key(c, o->key, o->value, &why);
                if (r == -EINVAL)
                        return flag_error(o->key, o->value, why, ret_error);
                if (r < 0)
                        return r;
                r = add_override(c, o->key, o->value);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int config_load_string(const agent_config *template, const char *path, const char *text,
                       agent_config **ret, char **ret_error) {
        _cleanup_config_ agent_config *t = NULL;
        int r;

        if (!template || !path || !ret || !ret_error)
                return -EINVAL;
        r = config_new(&t);
        if (r < 0)
                return r;
        free(t->path);
        t->path = strdup(path);
        if (!t->path)
                return -ENOMEM;
        t->path_from_flag = template->path_from_flag;
        for (size_t i = 0; i < template->n_overrides; i++) {
                r = add_override(t, template->overrides[i].key, template->overrides[i].value);
                if (r < 0)
                        return r;
        }
        return load(t, text, text ? strlen(text) : 0, ret, ret_error);
}

int config_load(const agent_config *template, agent_config **ret, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        if (!template || !ret || !ret_error)
                return -EINVAL;

        r = read_full_file(template->path, CONFIG_FILE_MAX, &text, &size);
        if (r == -ENOENT && !template->path_from_flag)
                text = NULL;
        else if (r < 0) {
                if (asprintf(ret_error, "%s: %s", template->path, strerror(-r)) < 0)
                        return -ENOMEM;
                return r;
        }
        return load(template, text, size, ret, ret_error);
}

const char *config_get_path(const agent_config *c) {
        return c->path;
}

int config_get_log_level(const agent_config *c) {
        return c->log_level;
}

const char *config_get_control_socket(const agent_config *c) {
        return c->control_socket;
}

const char *config_get_bus_socket(const agent_config *c) {
        return c->bus_socket;
}

char *const *config_get_watch(const agent_config *c) {
        return c->watch;
}

char *const *config_get_metered(const agent_config *c) {
        return c->metered;
}

static bool match_any(char *const *l, const char *name) {
        for (; l && *l; l++)
                if (fnmatch(*l, name, 0) == 0)
                        return true;
        return false;
}

bool config_interface_watched(const agent_config *c, const char *ifname, bool loopback) {
        if (!c->watch || !c->watch[0])
                return !loopback;
        return match_any(c->watch, ifname);
}

bool config_interface_metered(const agent_config *c, const char *ifname) {
        return match_any(c->metered, ifname);
}

void config_get_qos_params(const agent_config *c, qos_params *ret) {
        *ret = (qos_params) {
                .rtt_threshold_usec = c->rtt_ms * 1000ULL,
                .retrans_threshold_per_mille = c->retrans_per_mille,
                .rto_threshold = c->rto_threshold,
                .rto_window_usec = c->rto_window_sec * 1000000ULL,
                .degrade_after_usec = c->degrade_after_sec * 1000000ULL,
                .degrade_after_samples = c->degrade_after_samples,
                .recover_after_usec = c->recover_after_sec * 1000000ULL,
                .recover_after_samples = c->recover_after_samples,
        };
}

uint64_t config_get_poll_interval_usec(const agent_config *c) {
        return c->poll_interval_sec * 1000000ULL;
}

uint64_t config_get_sample_interval_usec(const agent_config *c) {
        return c->sample_interval_sec * 1000000ULL;
}

bool config_get_downloads_on_metered(const agent_config *c) {
        return c->downloads_on_metered;
}

bool config_get_bpf(const agent_config *c) {
        return c->bpf;
}

const char *config_get_cgroup_path(const agent_config *c) {
        return c->cgroup_path;
}

const char *config_get_state_directory(const agent_config *c) {
        return c->state_directory;
}

const char *config_get_trusted_publishers(const agent_config *c) {
        return c->trusted_publishers;
}

void config_get_launcher_options(const agent_config *c, launcher_options *ret) {
        *ret = (launcher_options) {
                .mode = c->launcher_mode,
                .restart_initial_usec = c->restart_initial_sec * 1000000ULL,
                .restart_max_usec = c->restart_max_sec * 1000000ULL,
                .restart_burst = c->restart_burst,
        };
}

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape_octal(char *s) {
        char *w = s;

        for (; *s; s++) {
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
                    s[3] >= '0' && s[3] <= '7') {
                        *w++ = (char) ((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
                        s += 3;
                } else
                        *w++ = *s;
        }
        *w = '\0';
}

static char *cgroup2_mount(const char *mountinfo) {
        const char *line = mountinfo;

        while (line && *line) {
                const char *end = strchrnul(line, '\n');
                _cleanup_free_ char *l = strndup(line, end - line);
                char *sep, *fields[5], *save = NULL, *p;
                size_t n = 0;

                line = *end ? end + 1 : NULL;
                if (!l)
                        return NULL;
                sep = strstr(l, " - ");
                if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
                        continue;
                *sep = '\0';
                for (p = strtok_r(l, " ", &save); p && n < ELEMENTSOF(fields); p = strtok_r(NULL, " ", &save))
                        fields[n++] = p;
                if (n < 5)
                        continue;
                unescape_octal(fields[4]);
                return strdup(fields[4]);
        }
        return NULL;
}

int config_cgroup_from_proc(const char *proc_self_cgroup, const char *mountinfo, char **ret) {
        _cleanup_free_ char *mount = NULL, *own = NULL;
        const char *line = proc_self_cgroup;
        char *p;

        if (!ret)
                return -EINVAL;
        mount = mountinfo ? cgroup2_mount(mountinfo) : NULL;
        if (!mount) {
                mount = strdup(CONFIG_CGROUP_ROOT_DEFAULT);
                if (!mount)
                        return -ENOMEM;
        }

        while (line && *line) {
                const char *end = strchrnul(line, '\n');

                if (strncmp(line, "0::/", 4) == 0) {
                        own = strndup(line + 3, end - line - 3);
                        if (!own)
                                return -ENOMEM;
                        break;
                }
                line = *end ? end + 1 : NULL;
        }

        /* "/" or a path that climbs out (a foreign cgroup namespace): the root. */
        if (!own || streq(own, "/") || strstr(own, "/..") || strstr(own, " (deleted)")) {
                *ret = TAKE_PTR(mount);
                return 0;
        }
        if (asprintf(&p, "%s%s", streq(mount, "/") ? "" : mount, own) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int config_resolve_cgroup(const agent_config *c, char **ret) {
        _cleanup_free_ char *cg = NULL, *mi = NULL, *path = NULL;
        int r;

        if (c->cgroup_path) {
                char *p = strdup(c->cgroup_path);
                if (!p)
                        return -ENOMEM;
                *ret = p;
                return 0;
        }

        /* /proc files have no size up front: read them with stdio. */
        FILE *f;
        size_t n = 0;

        f = fopen("/proc/self/cgroup", "re");
        if (f) {
                if (getdelim(&cg, &n, '\0', f) < 0) {
                        free(cg);
                        cg = NULL;
                }
                fclose(f);
        }
        n = 0;
        f = fopen("/proc/self/mountinfo", "re");
        if (f) {
                if (getdelim(&mi, &n, '\0', f) < 0) {
                        free(mi);
                        mi = NULL;
                }
                fclose(f);
        }

        r = config_cgroup_from_proc(cg, mi, &path);
        if (r < 0)
                return r;
        if (access(path, F_OK) < 0) {
                _cleanup_free_ char *root = NULL;

                r = config_cgroup_from_proc(NULL, mi, &root);
                if (r < 0)
                        return r;
                log_debug("cgroup %s does not exist, using %s", path, root);
                free(path);
                path = TAKE_PTR(root);
        }
        *ret = TAKE_PTR(path);
        return 0;
}

const char *config_get_domain_url(const agent_config *c) {
        return c->domain_url;
}

const char *config_get_domain_ca_file(const agent_config *c) {
        return c->domain_ca_file;
}

const char *config_get_domain_name(const agent_config *c) {
        return c->domain_name;
}

const char *config_get_domain_endpoint(const agent_config *c) {
        return c->domain_endpoint;
}

const char *config_get_messaging_protostub(const agent_config *c) {
        return c->messaging_stub;
}

const char *config_get_p2p_protostub(const agent_config *c) {
        return c->p2p_stub;
}

unsigned config_get_registry_lifetime_sec(const agent_config *c) {
        return c->registry_lifetime_sec;
}

unsigned config_get_domain_lifetime_sec(const agent_config *c) {
        return c->domain_lifetime_sec;
}

uint64_t config_get_domain_retry_max_usec(const agent_config *c) {
        return (uint64_t) c->domain_retry_max_sec * 1000000ULL;
}

const char *config_get_local_rd_listen(const agent_config *c) {
        return c->local_rd_listen;
}

uint16_t config_get_local_rd_port(const agent_config *c) {
        return (uint16_t) c->local_rd_port;
}

const char *config_get_local_rd_certificate(const agent_config *c) {
        return c->local_rd_certificate;
}

const char *config_get_local_rd_key(const agent_config *c) {
        return c->local_rd_key;
}

bool config_get_local_rd_cleartext(const agent_config *c) {
        return c->local_rd_cleartext;
}
