/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A single-host stage for hyperties: serves daemon/bus.c on a socket,
 * starts the given component programs with the environment the agent
 * gives them (docs/bus.md) and answers, in the same event loop:
 *
 *   - as the runtime: registration (attribute "registration": 200, the
 *     entry is recorded), loadProtoStub (404: no p2p here, so consumers take
 *     the domain path), read of "connectivity";
 *   - as domain D, reached over a real bus connection (libhyperty, a
 *     protostub instance with the domain route for D): Global Registry
 *     discovery (read to domain://registry.D) from the recorded entries,
 *     subscriptions at domain://msg-node.D/sm, fan-out of publications to
 *     ctxt://D/... to the subscribers, actuation updates handed to the
 *     resource's reporter, and registry status publications to
 *     ctxt://D/registry/hyperty/<uuid> when an instance comes or goes.
 *
 * It is a stand-in for rethink-domain and the messaging protostub in tests
 * of components on one host; the domain's own behaviour is tested with
 * rethink-domain itself.
 *
 *   bus-host --socket=PATH --domain=D [--local-endpoint=URL]
 *            [--run=NAME=PROGRAM [--config=NAME=JSON]]...
 *
 * --local-endpoint makes the registry entries offer that endpoint
 * (location "local"); loadProtoStub is still refused, so consumers meet a
 * peer they cannot reach.
 *
 * stdin, one JSON object per line:
 *   {"actuate": {"resource": R, "value": SENML}}  an update to R's reporter
 *                                                from a hyperty elsewhere
 * stdout:
 *   started NAME pid=PID address=ADDRESS         per started instance
 *   answer CODE DESCRIPTION VALUE                 the answer to a command
 * SIGTERM/SIGINT stop the components (SIGTERM) and then the host. */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "address.h"
#include "bus.h"
#include "hyperty.h"
#include "id.h"
#include "log.h"

#define MAX_COMPONENTS 8
#define MAX_SUBSCRIPTIONS 64

typedef struct component {
        char *name;
        char *program;
        char *config;
        char *address;
        pid_t pid;
        sd_event_source *child;
        /* Registration as recorded (resources), NULL until registered. */
        json_t *resources;
        bool live;
} component;

typedef struct subscription {
        char *subscriber;
        char *resource;
} subscription;

typedef struct host {
        sd_event *event;
        bus *bus;
        char *domain;
        char *runtime;
        char *socket;
        hyperty *domain_stub;  /* the domain's end of the route */
        component components[MAX_COMPONENTS];
        unsigned n_components;
        subscription subs[MAX_SUBSCRIPTIONS];
        unsigned n_subs;
        json_t *last_values;  /* resource -> last SenML */
        const char *local_endpoint;  /* registry entries say location local with it */
        sd_event_source *stdin_source;
        char in[64 * 1024];
        size_t in_len;
        bool stopping;
} host;

static component *find_component(host *h, const char *address) {
        for (unsigned i = 0; i < h->n_components; i++)
                if (streq_ptr(h->components[i].address, address))
                        return &h->components[i];
        return NULL;
}

/* The hyperty reporting ctxt://D/<uuid>/...: hyperty://D/<uuid>. */
static component *find_reporter(host *h, const char *resource) {
        _cleanup_rt_address_ rt_address *a = NULL;
        _cleanup_free_ char *hy = NULL;
        const char *path, *slash;

        if (rt_address_parse(resource, &a, NULL) < 0 || rt_address_get_scheme(a) != RT_ADDRESS_CTXT)
                return NULL;
        path = rt_address_get_path(a);
        slash = strchr(path, '/');
        if (asprintf(&hy, "hyperty://%s/%.*s", rt_address_get_authority(a),
                     (int) (slash ? (size_t) (slash - path) : strlen(path)), path) < 0)
                return NULL;
        return find_component(h, hy);
}

static int send_response(host *h, const rt_message *request, const char *responder, int code,
                         const char *description, json_t *value) {
        _cleanup_rt_message_ rt_message *resp = NULL;
        int r;

        r = rt_message_new_response(request, responder, code, description, value, &resp);
        if (r < 0)
                return r;
        return bus_send(h->bus, resp);
}

/* --- the domain's side ------------------------------------------------------------------------ */

static void fan_out(host *h, const char *resource, json_t *value) {
        _cleanup_(json_decrefp) json_t *body = json_pack("{s:s,s:O}", "resource", resource, "value", value);

        if (!body)
                return;
        for (unsigned i = 0; i < h->n_subs; i++) {
                _cleanup_rt_message_ rt_message *m = NULL;
                int r;

                if (rt_address_string_has_prefix(resource, h->subs[i].resource) != 1)
                        continue;
                r = rt_message_new(RT_MESSAGE_UPDATE, bus_next_id(h->bus), resource, h->subs[i].subscriber, body,
                                   &m);
                if (r >= 0)
                        r = bus_send(h->bus, m);
                if (r < 0)
                        log_debug_errno(r, "Failed to deliver %s to %s: %m", resource,
                                        h->subs[i].subscriber);
        }
}

static void publish_status(host *h, component *c, const char *status) {
        _cleanup_(json_decrefp) json_t *value = json_pack("[{s:s,s:s}]", "n", "status", "vs", status);
        _cleanup_free_ char *resource = NULL;
        const char *uuid = strrchr(c->address, '/') + 1;

        c->live = streq(status, "live");
        if (!value || asprintf(&resource, "ctxt://%s/registry/hyperty/%s", h->domain, uuid) < 0)
                return;
        fan_out(h, resource, value);
}

static json_t *registry_answer(host *h, json_t *criteria) {
        const char *resource = json_string_value(json_object_get(criteria, "resource"));
        const char *status = json_string_value(json_object_get(criteria, "status"));
        json_t *list = json_array();

        for (unsigned i = 0; list && i < h->n_components; i++) {
                component *c = &h->components[i];
                json_t *v;
                size_t k;
                bool match = !resource;

                if (!c->resources || (status && !streq(status, c->live ? "live" : "disconnected")))
                        continue;
                json_array_foreach(c->resources, k, v)
                        if (resource && streq(json_string_value(v), resource))
                                match = true;
                if (!match)
                        continue;
                (void) json_array_append_new(
                        list, json_pack("{s:s,s:s,s:O,s:[s],s:o,s:s}", "url", c->address, "runtime", h->runtime,
                                        "resources", c->resources, "dataSchemes", "ctxt", "location",
                                        h->local_endpoint ? json_pack("{s:s,s:s}", "type", "local", "endpoint",
                                                                      h->local_endpoint)
                                                          : json_pack("{s:s}", "type", "messaging"),
                                        "status", c->live ? "live" : "disconnected"));
        }
        return list ? json_pack("{s:o}", "hyperties", list) : NULL;
}

static void subscribe(host *h, const rt_message *m, bool on) {
        const char *resource = rt_message_get_resource(m), *from = rt_message_get_from(m);
        json_t *last;

        if (!resource || strncmp(resource, "ctxt://", 7) != 0) {
                (void) hyperty_reply(h->domain_stub, m, 400, "body.resource: expected a ctxt:// address", NULL);
                return;
        }
        for (unsigned i = 0; i < h->n_subs; i++)
                if (streq(h->subs[i].subscriber, from) && streq(h->subs[i].resource, resource)) {
                        if (on)
                                goto answer;
                        free(h->subs[i].subscriber);
                        free(h->subs[i].resource);
                        h->subs[i] = h->subs[--h->n_subs];
                        (void) hyperty_reply(h->domain_stub, m, 200, "unsubscribed", NULL);
                        return;
                }
        if (!on) {
                (void) hyperty_reply(h->domain_stub, m, 404, "not subscribed", NULL);
                return;
        }
        if (h->n_subs >= MAX_SUBSCRIPTIONS) {
                (void) hyperty_reply(h->domain_stub, m, 503, "too many subscriptions", NULL);
                return;
        }
        h->subs[h->n_subs].subscriber = strdup(from);
        h->subs[h->n_subs].resource = strdup(resource);
        h->n_subs++;
answer:
        last = json_object_get(h->last_values, resource);
        (void) hyperty_reply(h->domain_stub, m, 200, "subscribed", last);
}

static void on_domain_message(hyperty *stub, const rt_message *m, void *userdata) {
        host *h = userdata;
        rt_message_type type = rt_message_get_type(m);
        const char *to = rt_message_get_to(m, 0), *from = rt_message_get_from(m);
        _cleanup_free_ char *registry = NULL, *sm = NULL;

        if (asprintf(&registry, "domain://registry.%s", h->domain) < 0 ||
            asprintf(&sm, "domain://msg-node.%s/sm", h->domain) < 0)
                return;

        if (streq(to, registry) && type == RT_MESSAGE_READ) {
                _cleanup_(json_decrefp) json_t *answer = registry_answer(h, rt_message_get_criteria(m));

                (void) hyperty_reply(stub, m, 200, NULL, answer);
                return;
        }
        if (streq(to, sm) && (type == RT_MESSAGE_SUBSCRIBE || type == RT_MESSAGE_UNSUBSCRIBE)) {
                subscribe(h, m, type == RT_MESSAGE_SUBSCRIBE);
                return;
        }
        if (strncmp(to, "ctxt://", 7) == 0) {
                component *reporter = find_reporter(h, to);

                if (type == RT_MESSAGE_UPDATE && reporter && streq(from, reporter->address)) {
                        json_t *value = rt_message_get_value(m);

                        (void) json_object_set(h->last_values, to, value);
                        fan_out(h, to, value);
                        return;
                }
                if (type == RT_MESSAGE_UPDATE && reporter) {
                        /* Actuation goes unchanged to the reporter, which
                         * answers the sender itself. */
                        _cleanup_rt_message_ rt_message *fwd = NULL;

                        if (rt_message_new(RT_MESSAGE_UPDATE, rt_message_get_id(m), from, reporter->address,
                                           rt_message_get_body(m), &fwd) >= 0)
                                (void) bus_send(h->bus, fwd);
                        return;
                }
                if (type == RT_MESSAGE_SUBSCRIBE || type == RT_MESSAGE_UNSUBSCRIBE) {
                        subscribe(h, m, type == RT_MESSAGE_SUBSCRIBE);
                        return;
                }
        }
        if (type != RT_MESSAGE_RESPONSE)
                (void) hyperty_reply(stub, m, 404, "nothing here", NULL);
}

/* --- commands on stdin --------------------------------------------------------------------------- */

#define OUTSIDER "hyperty://%s/00000000-0000-4000-8000-000000000001"

static void on_command_answer(hyperty *stub, const rt_message *m, void *userdata) {
        _cleanup_free_ char *value = json_dumps(rt_message_get_value(m), JSON_COMPACT | JSON_ENCODE_ANY);

        printf("answer %d %s %s\n", rt_message_get_code(m), strna(rt_message_get_description(m)), strna(value));
        fflush(stdout);
}

/* {"actuate": {"resource": R, "value": V}}: an update from a hyperty
 * outside this host, handed to R's reporter as the domain would; the
 * answer is printed. */
static void command(host *h, const char *line, size_t n) {
        _cleanup_(json_decrefp) json_t *j = json_loadb(line, n, 0, NULL), *body = NULL;
        json_t *a = json_object_get(j, "actuate");
        const char *resource = json_string_value(json_object_get(a, "resource"));
        _cleanup_free_ char *from = NULL;
        component *reporter;
        int r;

        if (!resource || !json_object_get(a, "value") || !(reporter = find_reporter(h, resource))) {
                printf("error bad command\n");
                fflush(stdout);
                return;
        }
        if (asprintf(&from, OUTSIDER, h->domain) < 0)
                return;
        body = json_pack("{s:s,s:O}", "resource", resource, "value", json_object_get(a, "value"));
        r = body ? hyperty_send(h->domain_stub, RT_MESSAGE_UPDATE, from, reporter->address, body, on_command_answer,
                                h, NULL)
                 : -ENOMEM;
        if (r < 0) {
                printf("error %s\n", strerror(-r));
                fflush(stdout);
        }
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        host *h = userdata;
        ssize_t n;
        char *nl;

        n = read(fd, h->in + h->in_len, sizeof(h->in) - h->in_len);
        if (n <= 0) {
                h->stdin_source = sd_event_source_disable_unref(h->stdin_source);
                return 0;
        }
        h->in_len += (size_t) n;
        while ((nl = memchr(h->in, '\n', h->in_len))) {
                size_t len = (size_t) (nl - h->in);

                command(h, h->in, len);
                memmove(h->in, nl + 1, h->in_len - len - 1);
                h->in_len -= len + 1;
        }
        if (h->in_len == sizeof(h->in))
                h->in_len = 0;
        return 0;
}

/* --- the runtime's side ---------------------------------------------------------------------------- */

static int on_runtime(bus *b, const char *from, bus_instance_kind kind, const rt_message *m, void *userdata) {
        host *h = userdata;
        const char *what = rt_message_get_attribute(m);
        rt_message_type type = rt_message_get_type(m);

        if (type == RT_MESSAGE_RESPONSE)
                return 0;
        if (type == RT_MESSAGE_CREATE && streq_ptr(what, "registration")) {
                component *c = find_component(h, from);
                json_t *resources = json_object_get(rt_message_get_value(m), "resources");

                if (!c || kind != BUS_INSTANCE_HYPERTY)
                        return -EPERM;
                if (!json_is_array(resources))
                        return send_response(h, m, h->runtime, 400, "value.resources: expected an array", NULL);
                json_decref(c->resources);
                c->resources = json_incref(resources);
                {
                        _cleanup_free_ char *text = json_dumps(rt_message_get_value(m), JSON_COMPACT);

                        log_info("registered %s (%s): %s", c->address, c->name, strna(text));
                }
                publish_status(h, c, "live");
                return send_response(h, m, h->runtime, 200, "registered", NULL);
        }
        if (type == RT_MESSAGE_EXECUTE && streq_ptr(what, "loadProtoStub"))
                return send_response(h, m, h->runtime, 404, "no p2p protostub on this host", NULL);
        if (type == RT_MESSAGE_READ && streq_ptr(what, "connectivity")) {
                _cleanup_(json_decrefp) json_t *v = json_pack("{s:s}", "state", "online");

                return send_response(h, m, h->runtime, 200, NULL, v);
        }
        return -EOPNOTSUPP;
}

static void on_instance(bus *b, const char *address, bool connected, void *userdata) {
        host *h = userdata;
        component *c = find_component(h, address);

        log_debug("%s %s.", address, connected ? "connected" : "gone");
        if (c && !connected && c->resources && !h->stopping)
                publish_status(h, c, "disconnected");
}

/* --- components ------------------------------------------------------------------------------------ */

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        component *c = userdata;

        log_info("%s (pid %d) exited with %s %d.", c->name, (int) si->si_pid,
                 si->si_code == CLD_EXITED ? "status" : "signal", si->si_status);
        c->pid = 0;
        return 0;
}

static int start_component(host *h, component *c) {
        _cleanup_free_ char *token = NULL;
        char uuid[ID_UUID_STRING_MAX];
        pid_t pid;
        int r;

        r = id_uuid_new(uuid);
        if (r < 0)
                return r;
        if (asprintf(&c->address, "hyperty://%s/%s", h->domain, uuid) < 0)
                return -ENOMEM;
        r = bus_add_instance(h->bus, c->address, BUS_INSTANCE_HYPERTY, c->name, &token);
        if (r < 0)
                return log_error_errno(r, "Failed to add %s: %m", c->name);

        pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "Failed to fork: %m");
        if (pid == 0) {
                sigset_t all;

                sigemptyset(&all);
                (void) sigprocmask(SIG_SETMASK, &all, NULL);
                if (setenv("RETHINK_BUS", h->socket, 1) < 0 || setenv("RETHINK_ADDRESS", c->address, 1) < 0 ||
                    setenv("RETHINK_RUNTIME", h->runtime, 1) < 0 || setenv("RETHINK_DOMAIN", h->domain, 1) < 0 ||
                    setenv("RETHINK_COMPONENT", c->name, 1) < 0 ||
                    setenv("RETHINK_COMPONENT_KIND", "hyperty", 1) < 0 || setenv("RETHINK_BUS_TOKEN", token, 1) < 0 ||
                    (c->config && setenv("RETHINK_COMPONENT_CONFIGURATION", c->config, 1) < 0))
                        _exit(126);
                execl(c->program, c->program, (char *) NULL);
                fprintf(stderr, "cannot run %s: %m\n", c->program);
                _exit(127);
        }
        c->pid = pid;
        r = sd_event_add_child(h->event, &c->child, pid, WEXITED, on_child, c);
        if (r < 0)
                return log_error_errno(r, "Failed to watch %s: %m", c->name);
        printf("started %s pid=%d address=%s\n", c->name, (int) pid, c->address);
        fflush(stdout);
        return 0;
}

static int on_stop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        host *h = userdata;

        h->stopping = true;
        for (unsigned i = 0; i < h->n_components; i++)
                if (h->components[i].pid > 0)
                        (void) kill(h->components[i].pid, SIGTERM);
        return sd_event_exit(h->event, 0);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "domain", required_argument, NULL, 'd' },
                { "run", required_argument, NULL, 'r' },
                { "config", required_argument, NULL, 'c' },
                { "local-endpoint", required_argument, NULL, 'l' },
                {}
        };
        host h = {};
        char uuid[ID_UUID_STRING_MAX];
        _cleanup_free_ char *stub_address = NULL, *stub_token = NULL;
        sigset_t mask;
        int opt, r;

        log_open();
        h.last_values = json_object();
        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                char *eq = optarg ? strchr(optarg, '=') : NULL;

                switch (opt) {
                case 's':
                        h.socket = optarg;
                        break;
                case 'd':
                        h.domain = optarg;
                        break;
                case 'r':
                        if (!eq || h.n_components >= MAX_COMPONENTS)
                                return 2;
                        *eq = '\0';
                        h.components[h.n_components].name = optarg;
                        h.components[h.n_components].program = eq + 1;
                        h.n_components++;
                        break;
                case 'l':
                        h.local_endpoint = optarg;
                        break;
                case 'c':
                        if (!eq)
                                return 2;
                        *eq = '\0';
                        for (unsigned i = 0; i < h.n_components; i++)
                                if (streq(h.components[i].name, optarg))
                                        h.components[i].config = eq + 1;
                        break;
                default:
                        return 2;
                }
        }
        if (!h.socket || !h.domain) {
                fprintf(stderr, "usage: bus-host --socket=PATH --domain=D [--local-endpoint=URL] "
                                "[--run=NAME=PROGRAM [--config=NAME=JSON]]...\n");
                return 2;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGCHLD);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);

        if (id_uuid_new(uuid) < 0 || asprintf(&h.runtime, "runtime://%s/%s", h.domain, uuid) < 0 ||
            id_uuid_new(uuid) < 0 || asprintf(&stub_address, "runtime://%s/%s", h.domain, uuid) < 0)
                return 1;
        r = sd_event_default(&h.event);
        if (r >= 0)
                r = bus_new(h.event, h.socket, h.runtime, &h.bus);
        if (r < 0)
                return log_error_errno(r, "Failed to serve the bus on %s: %m", h.socket), 1;
        bus_set_runtime_handler(h.bus, on_runtime, &h);
        bus_set_instance_handler(h.bus, on_instance, &h);
        (void) sd_event_add_signal(h.event, NULL, SIGTERM, on_stop, &h);
        (void) sd_event_add_signal(h.event, NULL, SIGINT, on_stop, &h);

        /* The domain's end: a protostub instance on a real connection. */
        r = bus_add_instance(h.bus, stub_address, BUS_INSTANCE_PROTOSTUB, "domain", &stub_token);
        if (r >= 0)
                r = bus_set_domain_route(h.bus, h.domain, stub_address);
        if (r >= 0)
                r = hyperty_new(h.event,
                                &(hyperty_options) { .bus_path = h.socket, .address = stub_address,
                                                     .runtime = h.runtime, .token = stub_token },
                                &h.domain_stub);
        if (r >= 0) {
                hyperty_set_message_handler(h.domain_stub, on_domain_message, &h);
                r = hyperty_connect(h.domain_stub);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to set up the domain's end: %m"), 1;

        for (unsigned i = 0; i < h.n_components; i++)
                if (start_component(&h, &h.components[i]) < 0)
                        return 1;
        /* Not every stdin can be polled (/dev/null cannot): then there are
         * no commands. */
        if (sd_event_add_io(h.event, &h.stdin_source, STDIN_FILENO, EPOLLIN, on_stdin, &h) < 0)
                log_debug("No commands on stdin.");

        r = sd_event_loop(h.event);

        /* Give the components their SIGTERM's worth of time. */
        for (unsigned i = 0; i < h.n_components; i++) {
                component *c = &h.components[i];
                int status = 0;

                if (c->pid <= 0 || waitpid(c->pid, &status, 0) < 0)
                        continue;
                log_info("%s (pid %d) exited with %s %d.", c->name, (int) c->pid,
                         WIFEXITED(status) ? "status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
        for (unsigned i = 0; i < h.n_components; i++) {
                sd_event_source_disable_unref(h.components[i].child);
                json_decref(h.components[i].resources);
                free(h.components[i].address);
        }
        for (unsigned i = 0; i < h.n_subs; i++) {
                free(h.subs[i].subscriber);
                free(h.subs[i].resource);
        }
        sd_event_source_disable_unref(h.stdin_source);
        hyperty_free(h.domain_stub);
        bus_free(h.bus);
        sd_event_unref(h.event);
        json_decref(h.last_values);
        free(h.runtime);
        return r < 0 ? 1 : 0;
}
