/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The agent's configuration: /etc/rethink/agent.conf (or --config=PATH),
 * then the command-line flags, which override the file. Every key has a
 * flag; units/conf/agent.conf documents them all with their defaults.
 *
 * Loading is all-or-nothing: config_load() builds a new object, so a bad
 * file on reload leaves the running configuration alone. Errors name the
 * place and the key, e.g.
 *   agent.conf:12: [QoS] RttThresholdMs=abc: not a number
 *   --rtt-threshold-ms=abc: not a number ([QoS] RttThresholdMs)
 * Unknown sections and keys are errors (a typo must not silently fall back
 * to a default). When a key is assigned twice, the last assignment wins;
 * an empty assignment resets the key to its default. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "qos.h"

#ifndef RETHINK_VERSION
#include "version.h"
#endif

#define CONFIG_FILE_DEFAULT "/etc/rethink/agent.conf"
#define CONFIG_CONTROL_SOCKET_DEFAULT "/run/rethink/agent.sock"
#define CONFIG_BUS_SOCKET_DEFAULT "/run/rethink/bus.sock"
#define CONFIG_CGROUP_ROOT_DEFAULT "/sys/fs/cgroup/unified"
#define CONFIG_STATE_DIRECTORY_DEFAULT "/var/lib/rethink"
#define CONFIG_TRUSTED_PUBLISHERS_DEFAULT "/etc/rethink/publishers.d"

typedef struct agent_config agent_config;

/* A configuration holding the defaults, the default file path and no
 * flags. */
int config_new(agent_config **ret);
agent_config *config_free(agent_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(agent_config *, config_free);
#define _cleanup_config_ _cleanup_(config_freep)

/* Records --config and the flags in c (and applies them to c, so their values
 * are checked now). Returns 0 to go on, CONFIG_ARGV_EXIT when --help or
 * --version was printed (exit 0), or -EINVAL with *ret_error set (to be
 * freed) for a bad flag. */
#define CONFIG_ARGV_EXIT 1
int config_parse_argv(agent_config *c, int argc, char *argv[], char **ret_error);

/* Builds a fresh configuration from the defaults, the file template's path
 * names, and template's flags. A missing file is fine when it is the
 * default path (defaults apply) and an error when --config named it.
 * On failure returns negative errno and *ret_error (to be freed); *ret is
 * untouched. */
int config_load(const agent_config *template, agent_config **ret, char **ret_error);

/* Parses text as if it were the file named path (for tests and fuzzing of
 * the key parsers); the flags of template are applied afterwards. */
int config_load_string(const agent_config *template, const char *path, const char *text,
                       agent_config **ret, char **ret_error);

/* How many keys the configuration file knows. */
size_t config_n_keys(void);

const char *config_get_path(const agent_config *c);
int config_get_log_level(const agent_config *c);
const char *config_get_control_socket(const agent_config *c);
/* The message bus socket (docs/bus.md). Read at start only. */
const char *config_get_bus_socket(const agent_config *c);
/* NULL-terminated lists of names and globs; empty when unset. */
char *const *config_get_watch(const agent_config *c);
char *const *config_get_metered(const agent_config *c);
/* Watch unset: every interface but loopback (IFF_LOOPBACK is the caller's
 * to pass). Globs follow fnmatch(3). */
bool config_interface_watched(const agent_config *c, const char *ifname, bool loopback);
bool config_interface_metered(const agent_config *c, const char *ifname);
void config_get_qos_params(const agent_config *c, qos_params *ret);
uint64_t config_get_poll_interval_usec(const agent_config *c);
/* 0: no periodic samples in the journal. */
uint64_t config_get_sample_interval_usec(const agent_config *c);
bool config_get_downloads_on_metered(const agent_config *c);
bool config_get_bpf(const agent_config *c);
/* NULL: automatic (see config_resolve_cgroup()). */
const char *config_get_cgroup_path(const agent_config *c);
/* Software manager: the state directory (components.db, software/) and
 * the directory of trusted publisher keys. Read at start only. */
const char *config_get_state_directory(const agent_config *c);
const char *config_get_trusted_publishers(const agent_config *c);
/* [Components]: the launcher's mode and restart policy (daemon/launcher.h).
 * Read at start only. */
typedef struct launcher_options launcher_options;
void config_get_launcher_options(const agent_config *c, launcher_options *ret);
/* Registration with the domain ([Domain]); URL NULL: registration is off.
 * Read at start only. */
const char *config_get_domain_url(const agent_config *c);
const char *config_get_domain_ca_file(const agent_config *c);
/* The domain's name; NULL: no messaging session (registration only). */
const char *config_get_domain_name(const agent_config *c);
/* NULL: the stored or derived endpoint name (daemon/identity.h). */
const char *config_get_domain_endpoint(const agent_config *c);
/* [Components]: the runtime's protostubs and Global Registry lifetime. */
const char *config_get_messaging_protostub(const agent_config *c);
const char *config_get_p2p_protostub(const agent_config *c);
unsigned config_get_registry_lifetime_sec(const agent_config *c);
unsigned config_get_domain_lifetime_sec(const agent_config *c);
uint64_t config_get_domain_retry_max_usec(const agent_config *c);
/* The Local M2M Resource Directory ([LocalRD], docs/local-rd.md); Listen
 * NULL: off. Read at start only. */
const char *config_get_local_rd_listen(const agent_config *c);
uint16_t config_get_local_rd_port(const agent_config *c);
const char *config_get_local_rd_certificate(const agent_config *c);
const char *config_get_local_rd_key(const agent_config *c);
bool config_get_local_rd_cleartext(const agent_config *c);

/* The cgroup v2 directory sock_ops attaches to: CgroupPath= when set, else
 * our own cgroup (the "0::" line of /proc/self/cgroup) below the cgroup2
 * mount (from /proc/self/mountinfo, /sys/fs/cgroup/unified if none is
 * found), else the mount's root when our cgroup directory does not exist. */
int config_resolve_cgroup(const agent_config *c, char **ret);
/* The same from the given file contents, for tests. */
int config_cgroup_from_proc(const char *proc_self_cgroup, const char *mountinfo, char **ret);
