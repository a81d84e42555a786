/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs the component launcher (daemon/launcher.h) the way the agent does,
 * for tests/system/components-systemd.sh:
 *
 *   launcher-run [--mode=auto|systemd|fork] [--bus=PATH] [--restart-initial-ms=N]
 *                KIND:NAME:KEY:EXECUTABLE...
 *
 * Starts one instance per argument. Each (re)start gets a fresh credential
 * rethink-bus-token "tok-<name>-<n>" from the prepare handler. With --bus
 * it listens on PATH (mode 0666) and prints the first line each client
 * sends. Prints "mode M", "started UNIT PID", "exited UNIT CODE STATUS
 * restart=0|1 gave_up=0|1 stopped=0|1" and, on SIGTERM, stops every
 * instance and exits when they are gone. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "launcher.h"
#include "log.h"
#include "macro.h"

#define MAX_INSTANCES 8

static launch_instance *instances[MAX_INSTANCES];
static size_t n_instances, n_running;
static unsigned generation;
static bool stopping;
static sd_event *event;

static int prepare(launch_instance *i, launch_spec *spec, void *userdata) {
        static char token[128];
        static launch_credential cred;

        snprintf(token, sizeof(token), "tok-%s-%u", launch_instance_get_name(i), ++generation);
        cred = (launch_credential) { "rethink-bus-token", token };
        spec->credentials = &cred;
        spec->n_credentials = 1;
        return 0;
}

static void on_started(launch_instance *i, pid_t pid, void *userdata) {
        printf("started %s %d\n", launch_instance_get_unit(i), (int) pid);
        fflush(stdout);
}

static void on_exit_(launch_instance *i, const launch_exit *e, void *userdata) {
        printf("exited %s %d %d restart=%d gave_up=%d stopped=%d\n", launch_instance_get_unit(i), e->code, e->status,
               e->will_restart, e->gave_up, e->stopped);
        fflush(stdout);
        if (stopping && !e->will_restart && n_running > 0 && --n_running == 0)
                (void) sd_event_exit(event, 0);
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        stopping = true;
        n_running = 0;
        for (size_t k = 0; k < n_instances; k++)
                if (launcher_stop(instances[k]) > 0)
                        n_running++;
        if (n_running == 0)
                (void) sd_event_exit(event, 0);
        return 0;
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        char buf[512];
        ssize_t n = read(fd, buf, sizeof(buf) - 1);

        if (n > 0) {
                buf[n] = '\0';
                buf[strcspn(buf, "\n")] = '\0';
                printf("bus: %s\n", buf);
                fflush(stdout);
        }
        sd_event_source_disable_unref(s);
        close(fd);
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c >= 0 && sd_event_add_io(event, NULL, c, EPOLLIN, on_client, NULL) < 0)
                close(c);
        return 0;
}

static int listen_bus(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -EINVAL;
        strcpy(sa.sun_path, path);
        (void) unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 || listen(fd, 16) < 0) {
                close(fd);
                return -errno;
        }
        return sd_event_add_io(event, NULL, fd, EPOLLIN, on_accept, NULL);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "mode", required_argument, NULL, 'm' },
                { "bus", required_argument, NULL, 'b' },
                { "restart-initial-ms", required_argument, NULL, 'r' },
                {},
        };
        launcher_options o = { .mode = LAUNCHER_AUTO, .stop_timeout_usec = 3 * USEC_PER_SEC };
        const char *bus = NULL;
        launcher *l = NULL;
        sigset_t mask;
        int c, r;

        log_set_max_level(LOG_DEBUG);
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'm':
                        o.mode = launcher_mode_from_string(optarg);
                        if (o.mode < 0)
                                return fprintf(stderr, "bad mode %s\n", optarg), 2;
                        break;
                case 'b':
                        bus = optarg;
                        break;
                case 'r':
                        o.restart_initial_usec = strtoull(optarg, NULL, 10) * USEC_PER_MSEC;
                        break;
                default:
                        return 2;
                }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        if (sd_event_default(&event) < 0 || sd_event_add_signal(event, NULL, SIGTERM, on_sigterm, NULL) < 0 ||
            sd_event_add_signal(event, NULL, SIGINT, on_sigterm, NULL) < 0)
                return 1;
        if (bus) {
                r = listen_bus(bus);
                if (r < 0)
                        return fprintf(stderr, "cannot listen on %s: %s\n", bus, strerror(-r)), 1;
        }
        r = launcher_new(event, &o, &l);
        if (r < 0)
                return fprintf(stderr, "launcher_new: %s\n", strerror(-r)), 1;
        launcher_set_prepare_handler(l, prepare, NULL);
        launcher_set_exit_handler(l, on_exit_, NULL);
        launcher_set_started_handler(l, on_started, NULL);
        printf("mode %s\n", launcher_mode_to_string(launcher_get_mode(l)));
        fflush(stdout);

        for (int k = optind; k < argc && n_instances < MAX_INSTANCES; k++) {
                char *kind = argv[k], *name, *key, *exe;

                name = strchr(kind, ':');
                key = name ? strchr(name + 1, ':') : NULL;
                exe = key ? strchr(key + 1, ':') : NULL;
                if (!exe)
                        return fprintf(stderr, "expected KIND:NAME:KEY:EXECUTABLE, got %s\n", argv[k]), 2;
                *name++ = *key++ = *exe++ = '\0';
                r = launcher_start(l,
                                   &(launch_spec) {
                                           .name = name,
                                           .key = key,
                                           .kind = launch_kind_from_string(kind),
                                           .executable = exe,
                                           .bus_socket = bus,
                                   },
                                   &instances[n_instances]);
                if (r < 0)
                        return fprintf(stderr, "launcher_start %s: %s\n", name, strerror(-r)), 1;
                n_instances++;
        }

        r = sd_event_loop(event);
        for (size_t k = 0; k < n_instances; k++)
                launch_instance_free(instances[k]);
        launcher_free(l);
        sd_event_unref(event);
        return r < 0 ? 1 : 0;
}
