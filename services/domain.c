/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "auth.h"
#include "bootstrap.h"
#include "catalogue.h"
#include "descriptor.h"
#include "dm.h"
#include "domain.h"
#include "fileio.h"
#include "h2-server.h"
#include "idm.h"
#include "log.h"
#include "msg.h"
#include "registry.h"
#include "router.h"
#include "store.h"
#include "time-util.h"
#include "tls.h"
#include "userdb.h"

struct domain {
        sd_event *event;
        domain_config *config;
        db *db;
        auth *auth;
        router *router;
        catalogue *catalogue;
        dm *dm;
        idm *idm;
        userdb *users;
        registry *registry;
        msg *msg;
        bootstrap *bootstrap;
        H2Server *server;
        sd_event_source *sigterm, *sigint, *sighup;
        bool stopping;
};

int domain_new(sd_event *e, domain_config *config, domain **ret) {
        _cleanup_domain_ domain *d = NULL;
        int r;

        if (!config || !ret)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        if (e)
                d->event = sd_event_ref(e);
        else {
                r = sd_event_default(&d->event);
                if (r < 0)
                        return r;
        }
        r = auth_new(&d->auth);
        if (r < 0)
                return r;
        r = router_new(d->auth, &d->router);
        if (r < 0)
                return r;
        d->config = config;
        *ret = TAKE_PTR(d);
        return 0;
}

domain *domain_free(domain *d) {
        if (!d)
                return NULL;
        /* The server first: its close handlers free request state that
         * points into the services. */
        h2_server_free(d->server);
        /* Before the Messaging Service, which routes to it. */
        bootstrap_free(d->bootstrap);
        msg_free(d->msg);
        dm_free(d->dm);
        registry_free(d->registry);
        idm_free(d->idm);
        userdb_free(d->users);
        catalogue_free(d->catalogue);
        router_free(d->router);
        auth_free(d->auth);
        db_close(d->db);
        sd_event_source_disable_unref(d->sigterm);
        sd_event_source_disable_unref(d->sigint);
        sd_event_source_disable_unref(d->sighup);
        domain_config_free(d->config);
        sd_event_unref(d->event);
        free(d);
        return NULL;
}

sd_event *domain_get_event(domain *d) {
        return d->event;
}

int domain_get_port(domain *d) {
        return d->server ? h2_server_get_port(d->server) : -ENOTCONN;
}

static void apply_log_level(const domain_config *c) {
        /* The environment is how tests and debugging sessions ask for more. */
        if (!getenv("RETHINK_LOG_LEVEL"))
                log_set_max_level(domain_config_get_log_level(c));
}

/* Everything that can change without a restart. */
static int apply_reloadable(domain *d, const domain_config *c) {
        int r;

        apply_log_level(c);
        r = auth_set_admin_token(d->auth, domain_config_get_admin_token(c));
        if (r < 0)
                return r;
        if (d->idm) {
                r = idm_set_admin_credential(d->idm, domain_config_get_admin_token(c));
                if (r < 0)
                        return r;
        }
        if (d->catalogue) {
                r = catalogue_set_trusted_publishers(d->catalogue, domain_config_get_trusted_publishers(c));
                if (r < 0)
                        return r;
                catalogue_set_max_package_size(d->catalogue, domain_config_get_max_package_size(c));
        }
        if (d->dm)
                dm_set_lifetimes(d->dm, &(dm_lifetimes) {
                                                .default_sec = domain_config_get_default_lifetime_sec(c),
                                                .min_sec = domain_config_get_min_lifetime_sec(c),
                                                .max_sec = domain_config_get_max_lifetime_sec(c),
                                        });
        return 0;
}

static void warn_restart_only(const domain_config *o, const domain_config *n) {
        if (!streq_ptr(domain_config_get_state_directory(o), domain_config_get_state_directory(n)))
                log_notice("[Domain] StateDirectory= changed; takes effect after a restart.");
        if (!streq_ptr(domain_config_get_listen(o), domain_config_get_listen(n)) ||
            domain_config_get_port(o) != domain_config_get_port(n))
                log_notice("[HTTP] Listen= or Port= changed; takes effect after a restart.");
        if (!streq_ptr(domain_config_get_certificate(o), domain_config_get_certificate(n)) ||
            !streq_ptr(domain_config_get_private_key(o), domain_config_get_private_key(n)))
                log_notice("[HTTP] Certificate= or PrivateKey= changed; takes effect after a restart.");
        if (domain_config_get_max_connections(o) != domain_config_get_max_connections(n) ||
            domain_config_get_max_concurrent_streams(o) != domain_config_get_max_concurrent_streams(n) ||
            domain_config_get_request_timeout_usec(o) != domain_config_get_request_timeout_usec(n) ||
            domain_config_get_idle_timeout_usec(o) != domain_config_get_idle_timeout_usec(n))
                log_notice("[HTTP] limits changed; take effect after a restart.");
        /* The HTTP/2 server's body limit was sized for the package limit
         * at start; a smaller one applies now, a larger one after a restart. */
        if (domain_config_get_max_package_size(n) > domain_config_get_max_package_size(o))
                log_notice("[Catalogue] MaxPackageSize= grew; packages above the old limit are accepted after a restart.");
}

int domain_apply_config(domain *d, domain_config *config) {
        int r;

        if (!d || !config)
                return -EINVAL;
        r = apply_reloadable(d, config);
        if (r < 0) {
                (void) apply_reloadable(d, d->config);
                return r;
        }
        warn_restart_only(d->config, config);
        domain_config_free(d->config);
        d->config = config;
        return 0;
}

static bool socket_is_loopback(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char buf[INET6_ADDRSTRLEN];

        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return false;
        if (ss.ss_family == AF_INET)
                return inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, buf, sizeof(buf)) &&
                       domain_address_is_loopback(buf);
        if (ss.ss_family == AF_INET6)
                return inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, buf, sizeof(buf)) &&
                       domain_address_is_loopback(buf);
        return false;
}

/* A socket passed by the service manager (rethink-domain.socket) replaces
 * Listen= and Port=; its own address decides whether h2c is allowed. */
static int listen_or_adopt(domain *d, bool tls) {
        const domain_config *c = d->config;
        int n, r;

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by the service manager: %m");
        if (n > 1)
                return log_error_errno(EINVAL, "Got %d sockets from the service manager, expected one.", n);
        if (n == 1) {
                int fd = SD_LISTEN_FDS_START;

                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
                        safe_close(fd);
                        return log_error_errno(EINVAL, "The socket passed by the service manager is not a listening stream socket.");
                }
                if (!tls && !socket_is_loopback(fd)) {
                        safe_close(fd);
                        return log_error_errno(EPERM, "Refusing cleartext h2c on the passed socket: it is not bound "
                                                      "to a loopback address; set [HTTP] Certificate= and PrivateKey=.");
                }
                r = h2_server_adopt_fd(d->server, fd);
                if (r < 0)
                        return log_error_errno(r, "Failed to take over the passed socket: %m");
                log_info("Listening on the socket from the service manager, port %d (%s).",
                         h2_server_get_port(d->server), tls ? "TLS, ALPN h2" : "h2c, loopback only");
                return 0;
        }

        r = h2_server_listen(d->server, domain_config_get_listen(c), domain_config_get_port(c));
        if (r < 0)
                return log_error_errno(r, "Failed to listen on [%s]:%u: %m", domain_config_get_listen(c),
                                       domain_config_get_port(c));
        log_info("Listening on [%s]:%d (%s).", domain_config_get_listen(c), h2_server_get_port(d->server),
                 tls ? "TLS, ALPN h2" : "h2c, loopback only");
        return 0;
}

static int setup_server(domain *d) {
        const domain_config *c = d->config;
        _cleanup_ssl_ctx_ SSL_CTX *tls = NULL;
        H2ServerConfig hc;
        int r;

        if (domain_config_get_certificate(c)) {
                r = tls_server_ctx_new(domain_config_get_certificate(c), domain_config_get_private_key(c), &tls);
                if (r < 0)
                        return log_error_errno(r, "Failed to load the TLS certificate %s and key %s: %m",
                                               domain_config_get_certificate(c), domain_config_get_private_key(c));
        } else if (!domain_address_is_loopback(domain_config_get_listen(c)))
                /* The configuration refuses this already; never listen in
                 * clear text on a network, whatever the caller did. */
                return log_error_errno(EPERM, "Refusing cleartext h2c on %s: only loopback addresses may go without TLS.",
                                       domain_config_get_listen(c));

        h2_server_config_init(&hc);
        hc.max_connections = domain_config_get_max_connections(c);
        hc.max_concurrent_streams = domain_config_get_max_concurrent_streams(c);
        hc.request_timeout_usec = domain_config_get_request_timeout_usec(c);
        hc.idle_timeout_usec = domain_config_get_idle_timeout_usec(c);
        /* The router streams every body and enforces each route's limit;
         * the server's own limit only has to let the largest through. */
        hc.max_request_body = (size_t) MIN((uint64_t) SIZE_MAX, domain_config_get_max_package_size(c));

        r = h2_server_new(d->event, &hc, tls, &d->server);
        if (r < 0)
                return log_error_errno(r, "Failed to create the HTTP/2 server: %m");
        router_attach(d->router, d->server);
        return listen_or_adopt(d, tls != NULL);
}

/* The IdM's view of a device: device management's record. */
static int idm_device_lookup(const char *endpoint, char **ret_public_key, bool *ret_claimed, void *userdata) {
        domain *d = userdata;
        json_t *dev = NULL;
        const char *key;
        char *k;
        int r;

        r = dm_get_device(d->dm, endpoint, &dev);
        if (r < 0)
                return r;
        /* Client assertions are ES256: the device's P-256 key, which
         * devices that predate it lack (the IdM then refuses them). */
        key = json_string_value(json_object_get(dev, "tokenKey"));
        if (!key)
                key = json_string_value(json_object_get(dev, "publicKey"));
        k = key ? strdup(key) : NULL;
        if (k) {
                *ret_claimed = json_is_true(json_object_get(dev, "claimed"));
                *ret_public_key = k;
        }
        json_decref(dev);
        return k ? 0 : key ? -ENOMEM : -ENOENT;
}

/* The IdM's password grant asks the user store. */
static int idm_password_check(const char *username, const char *password, unsigned *ret_retry_after_sec,
                              void *userdata) {
        domain *d = userdata;

        return userdb_authenticate(d->users, username, password, 0, ret_retry_after_sec);
}

/* The Messaging Service asks the IdM who is calling. */
static int msg_check_bearer(H2Request *req, const char *scope, char **ret_subject, uint64_t *ret_expiry,
                            const char **ret_reason, void *userdata) {
        domain *d = userdata;
        _cleanup_token_claims_ token_claims *claims = NULL;
        char *subject;
        int r;

        r = idm_check_bearer(d->idm, req, scope, &claims, ret_reason);
        if (r < 0)
                return r;
        subject = strdup(token_claims_get_subject(claims));
        if (!subject)
                return -ENOMEM;
        *ret_subject = subject;
        *ret_expiry = token_claims_get_expiry(claims);
        return 0;
}

/* hyperty:// messages go to the runtime the Global Registry knows hosts
 * the hyperty. */
static int msg_hyperty_lookup(const char *hyperty, char **ret_runtime, void *userdata) {
        domain *d = userdata;

        return registry_get_runtime(d->registry, hyperty, ret_runtime);
}

static void on_registry_status(const char *url, const char *status, void *userdata) {
        domain *d = userdata;
        int r;

        r = msg_publish_status(d->msg, url, status);
        if (r < 0)
                log_debug_errno(r, "Status %s of %s not published: %m", status, url);
}

int domain_start(domain *d) {
        const char *dir = domain_config_get_state_directory(d->config);
        _cleanup_free_ char *reason = NULL;
        int r;

        apply_log_level(d->config);
        r = mkdir_p(dir, 0750);
        if (r < 0)
                return log_error_errno(r, "Failed to create the state directory %s: %m", dir);
        r = store_open(dir, &d->db, &reason);
        if (r < 0)
                return log_error_errno(r, "Failed to open the database in %s: %s", dir, reason ?: strerror(-r));

        r = catalogue_new(d->event, d->db, dir, &d->catalogue);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the catalogue in %s: %m", dir);
        r = dm_new(d->event, d->db, &d->dm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up device management: %m");
        r = idm_new(dir, domain_config_get_name(d->config), &d->idm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the IdM: %m");
        idm_set_device_lookup(d->idm, idm_device_lookup, d);
        /* Admin routes take the IdM's admin tokens. */
        auth_set_idm(d->auth, d->idm);
        r = userdb_new(dir, domain_config_get_name(d->config), &d->users);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the users in %s: %m", dir);
        idm_set_password_check(d->idm, idm_password_check, d);
        r = registry_new(d->event, dir, domain_config_get_name(d->config), d->idm, &d->registry);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Global Registry: %m");
        r = msg_new(d->event, domain_config_get_name(d->config), dir, &d->msg);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Messaging Service: %m");
        msg_set_auth_expiry(d->msg, msg_check_bearer, d);
        registry_set_status_handler(d->registry, on_registry_status, d);
        msg_set_hyperty_lookup(d->msg, msg_hyperty_lookup, d);
        r = bootstrap_new(d->event, domain_config_get_name(d->config), dir, d->catalogue, d->dm, d->msg,
                          &d->bootstrap);
        if (r < 0)
                return log_error_errno(r, "Failed to set up bootstrap orders in %s: %m", dir);
        r = apply_reloadable(d, d->config);
        if (r < 0)
                return log_error_errno(r, "Failed to apply the configuration: %m");
        r = registry_start(d->registry);
        if (r < 0)
                return r;
        r = dm_start(d->dm);
        if (r < 0)
                return r;

        r = catalogue_add_routes(d->catalogue, d->router);
        if (r >= 0)
                r = dm_add_routes(d->dm, d->router);
        if (r >= 0)
                r = idm_add_routes(d->idm, d->router);
        if (r >= 0)
                r = userdb_add_routes(d->users, d->router);
        if (r >= 0)
                r = registry_add_routes(d->registry, d->router);
        if (r >= 0)
                r = msg_add_routes(d->msg, d->router);
        if (r >= 0)
                r = bootstrap_add_routes(d->bootstrap, d->router);
        if (r < 0)
                return log_error_errno(r, "Failed to set up routes: %m");

        return setup_server(d);
}

/* --- signals ------------------------------------------------------------------ */

static void on_shutdown_done(H2Server *s, void *userdata) {
        domain *d = userdata;

        (void) sd_event_exit(d->event, 0);
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        domain *d = userdata;
        int r;

        if (d->stopping) {
                log_info("Second stop signal, exiting now.");
                return sd_event_exit(d->event, 0);
        }
        d->stopping = true;
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping: finishing open requests");
        log_info("Stopping: letting open requests finish.");
        r = h2_server_shutdown(d->server, domain_config_get_shutdown_grace_usec(d->config), on_shutdown_done, d);
        if (r < 0)
                return sd_event_exit(d->event, 0);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        domain *d = userdata;
        _cleanup_domain_config_ domain_config *n = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nSTATUS=Reloading configuration\nMONOTONIC_USEC=%" PRIu64,
                          now(CLOCK_MONOTONIC));
        r = domain_config_load(d->config, &n, &error);
        if (r < 0)
                log_error("Reload failed, keeping the current configuration: %s", error ?: strerror(-r));
        else {
                r = domain_apply_config(d, n);
                if (r < 0)
                        log_error_errno(r, "Reload failed, keeping the current configuration: %m");
                else {
                        TAKE_PTR(n);
                        log_info("Reloaded %s.", domain_config_get_path(d->config));
                }
        }
        (void) sd_notify(false, "READY=1\nSTATUS=Serving");
        return 0;
}

int domain_run(domain *d) {
        sigset_t mask;
        int r;

        /* OpenSSL writes to the socket with write(): a device that resets
         * its connection (a link that comes back, a killed agent) must
         * cost that connection an EPIPE, not the whole domain. systemd
         * does the same for services with IgnoreSIGPIPE=yes. */
        if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
                return log_error_errno(errno, "Failed to ignore SIGPIPE: %m");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        r = sd_event_add_signal(d->event, &d->sigterm, SIGTERM, on_stop_signal, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, &d->sigint, SIGINT, on_stop_signal, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, &d->sighup, SIGHUP, on_sighup, d);
        if (r < 0)
                return log_error_errno(r, "Failed to install signal handlers: %m");
        r = sd_event_set_watchdog(d->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

        (void) sd_notify(false, "READY=1\nSTATUS=Serving");
        return sd_event_loop(d->event);
}
