/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "ctlproto.h"
#include "log.h"
#include "macro.h"
#include "unix-socket.h"

/* A client's requests are read only while less than this is queued for it,
 * so one that sends but never reads stops being served (and times out)
 * instead of making us buffer without bound. */
#define CONTROL_OUTPUT_HIGH (64U * 1024U)

typedef struct control_client control_client;

struct control_deferred {
        control_client *client; /* NULL once the client is gone */
        int64_t id;
        control_deferred *prev, *next;
};

typedef struct control_command {
        char *name;
        control_handler_t handler;
        void *userdata;
} control_command;

struct control_server {
        sd_event *event;
        char *path;
        int fd;
        sd_event_source *listen_source;
        dev_t dev;
        ino_t ino;

        control_command *commands;
        size_t n_commands;

        control_client *clients;
        unsigned n_clients;

        unsigned clients_max;
        size_t output_max;
        uint64_t idle_usec;
};

struct control_client {
        control_server *server;
        control_client *prev, *next;
        int fd;
        sd_event_source *io_source;
        sd_event_source *idle_source;
        struct ucred cred;

        char *in;
        size_t in_size;

        char *out;
        size_t out_size, out_alloc, out_done;

        /* No more requests: flush what is queued, then close. */
        bool closing;

        /* Requests whose handler answers later; the client stays open
         * for them even after the peer stopped sending. */
        control_deferred *deferred;
};

struct control_request {
        const ctl_request *request;
        const control_client *client;
        int error_code;
        char *error_description;
        bool deferred;
};

static control_client *client_free(control_client *c);
static int client_update_events(control_client *c);

/* --- requests, as handlers see them ----------------------------------------- */

int64_t control_request_get_id(const control_request *req) {
        return ctl_request_get_id(req->request);
}

const char *control_request_get_command(const control_request *req) {
        return ctl_request_get_command(req->request);
}

json_t *control_request_get_args(const control_request *req) {
        return ctl_request_get_args(req->request);
}

uid_t control_request_get_peer_uid(const control_request *req) {
        return req->client->cred.uid;
}

gid_t control_request_get_peer_gid(const control_request *req) {
        return req->client->cred.gid;
}

pid_t control_request_get_peer_pid(const control_request *req) {
        return req->client->cred.pid;
}

int control_request_set_error(control_request *req, int code, const char *format, ...) {
        char *d = NULL;
        va_list ap;

        if (code < 400 || code > 599)
                code = CTLPROTO_INTERNAL;

        va_start(ap, format);
        if (vasprintf(&d, format, ap) < 0)
                d = NULL;
        va_end(ap);

        free(req->error_description);
        req->error_description = d;
        req->error_code = code;
        return ctlproto_code_to_errno(code);
}

/* --- output ------------------------------------------------------------------ */

static size_t client_pending(const control_client *c) {
        return c->out_size - c->out_done;
}

static int client_queue(control_client *c, const char *data, size_t n) {
        if (c->out_done > 0 && c->out_done == c->out_size)
                c->out_done = c->out_size = 0;

        if (c->out_size + n > c->out_alloc) {
                size_t pending = client_pending(c), want;
                char *p;

                /* Compact first: what was sent is dead weight. */
                if (c->out_done > 0) {
                        memmove(c->out, c->out + c->out_done, pending);
                        c->out_size = pending;
                        c->out_done = 0;
                }
                if (c->out_size + n > c->out_alloc) {
                        want = MAX(c->out_alloc * 2, c->out_size + n);
                        p = realloc(c->out, want);
                        if (!p)
                                return -ENOMEM;
                        c->out = p;
                        c->out_alloc = want;
                }
        }
        memcpy(c->out + c->out_size, data, n);
        c->out_size += n;
        return 0;
}

static int client_queue_reply(control_client *c, const ctl_reply *reply) {
        _cleanup_free_ char *line = NULL;
        int r;

        r = ctl_reply_format(reply, &line);
        if (r < 0)
                return r;

        if (strlen(line) > c->server->output_max) {
                _cleanup_ctl_reply_ ctl_reply *e = NULL;

                log_warning("Control reply to command %" PRId64 " is %zu bytes, over the limit of %zu; sending an error instead.",
                            ctl_reply_get_id(reply), strlen(line), c->server->output_max);
                free(line);
                line = NULL;
                r = ctl_reply_new_error(ctl_reply_get_id(reply), CTLPROTO_INTERNAL, "Reply too large", &e);
                if (r < 0)
                        return r;
                r = ctl_reply_format(e, &line);
                if (r < 0)
                        return r;
        }
        return client_queue(c, line, strlen(line));
}

static int client_queue_error(control_client *c, int64_t id, int code, const char *description) {
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        int r;

        r = ctl_reply_new_error(id, code, description, &reply);
        if (r < 0)
                return r;
        return client_queue_reply(c, reply);
}

/* Returns 0 when the client lives on, < 0 when it was freed. */
static int client_flush(control_client *c) {
        while (client_pending(c) > 0) {
                ssize_t n = send(c->fd, c->out + c->out_done, client_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        log_debug_errno(errno, "Control client %d went away while we wrote: %m", (int) c->cred.pid);
                        client_free(c);
                        return -ECONNRESET;
                }
                c->out_done += (size_t) n;
                (void) sd_event_source_set_time_relative(c->idle_source, c->server->idle_usec);
        }

        if (client_pending(c) == 0 && c->closing && !c->deferred) {
                client_free(c);
                return -ECONNRESET;
        }
        return 0;
}

/* --- deferred replies --------------------------------------------------------- */

int control_request_defer(control_request *req, control_deferred **ret) {
        control_client *c = (control_client *) req->client;
        control_deferred *d;

        if (!ret || req->deferred)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->client = c;
        d->id = ctl_request_get_id(req->request);
        d->next = c->deferred;
        if (c->deferred)
                c->deferred->prev = d;
        c->deferred = d;
        req->deferred = true;
        *ret = d;
        return 0;
}

static control_client *deferred_detach(control_deferred *d) {
        control_client *c = d->client;

        if (!c)
                return NULL;
        if (d->prev)
                d->prev->next = d->next;
        else
                c->deferred = d->next;
        if (d->next)
                d->next->prev = d->prev;
        d->client = NULL;
        return c;
}

control_deferred *control_deferred_free(control_deferred *d) {
        control_client *c;

        if (!d)
                return NULL;
        c = deferred_detach(d);
        free(d);
        /* The client may have been waiting only for this one. */
        if (c && client_flush(c) >= 0)
                (void) client_update_events(c);
        return NULL;
}

static int deferred_send(control_deferred *d, ctl_reply *reply) {
        control_client *c = deferred_detach(d);
        int r;

        free(d);
        if (!c)
                return 0;
        r = client_queue_reply(c, reply);
        if (r < 0) {
                log_error_errno(r, "Failed to answer control client %d, dropping it: %m", (int) c->cred.pid);
                client_free(c);
                return r;
        }
        if (client_flush(c) < 0)
                return 0;
        r = client_update_events(c);
        if (r < 0) {
                log_error_errno(r, "Failed to update control client %d: %m", (int) c->cred.pid);
                client_free(c);
        }
        return 0;
}

int control_deferred_reply(control_deferred *d, json_t *result) {
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        int r;

        if (!d) {
                json_decref(result);
                return -EINVAL;
        }
        if (result && !json_is_object(result)) {
                json_decref(result);
                return control_deferred_fail(d, CTLPROTO_INTERNAL, "Internal error: malformed result");
        }
        r = ctl_reply_new_ok(d->id, result, &reply);
        json_decref(result);
        if (r < 0) {
                control_deferred_free(d);
                return r;
        }
        return deferred_send(d, reply);
}

int control_deferred_fail(control_deferred *d, int code, const char *description) {
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        int r;

        if (!d)
                return -EINVAL;
        if (code < 400 || code > 599)
                code = CTLPROTO_INTERNAL;
        r = ctl_reply_new_error(d->id, code, description ?: "Failed", &reply);
        if (r < 0) {
                control_deferred_free(d);
                return r;
        }
        return deferred_send(d, reply);
}

/* --- input ------------------------------------------------------------------- */

static const control_command *server_find_command(const control_server *s, const char *name) {
        for (size_t i = 0; i < s->n_commands; i++)
                if (streq(s->commands[i].name, name))
                        return s->commands + i;
        return NULL;
}

static int client_dispatch(control_client *c, const ctl_request *request) {
        control_server *s = c->server;
        const char *name = ctl_request_get_command(request);
        int64_t id = ctl_request_get_id(request);
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        const control_command *cmd;
        json_t *result = NULL;
        int r;

        cmd = server_find_command(s, name);
        if (!cmd) {
                _cleanup_free_ char *d = NULL;

                log_debug("Control client %d asked for unknown command \"%s\".", (int) c->cred.pid, name);
                if (asprintf(&d, "Unknown command \"%s\"", name) < 0)
                        return -ENOMEM;
                return client_queue_error(c, id, CTLPROTO_NOT_FOUND, d);
        }

        control_request req = { .request = request, .client = c };
        r = cmd->handler(&req, &result, cmd->userdata);
        if (r >= 0 && req.deferred) {
                json_decref(result);
                free(req.error_description);
                return 0;
        }
        if (r < 0) {
                json_decref(result);
                if (req.error_code == 0) {
                        req.error_code = ctlproto_errno_to_code(r);
                        free(req.error_description);
                        req.error_description = strdup(strerror(abs(r)));
                }
                log_debug_errno(r, "Control command \"%s\" from %d failed with %d: %s", name,
                                (int) c->cred.pid, req.error_code, strna(req.error_description));
                r = client_queue_error(c, id, req.error_code, req.error_description ?: "Failed");
                free(req.error_description);
                return r;
        }
        free(req.error_description);

        if (result && !json_is_object(result)) {
                json_decref(result);
                log_error("Control command \"%s\" produced a result that is not an object.", name);
                return client_queue_error(c, id, CTLPROTO_INTERNAL, "Internal error: malformed result");
        }

        r = ctl_reply_new_ok(id, result, &reply);
        json_decref(result);
        if (r < 0)
                return r;
        return client_queue_reply(c, reply);
}

static int client_handle_line(control_client *c, const char *line, size_t n) {
        _cleanup_ctl_request_ ctl_request *request = NULL;
        ctlproto_error error;
        int r;

        r = ctl_request_parse(line, n, &request, &error);
        if (r == -EBADMSG) {
                log_debug("Bad request from control client %d: %s", (int) c->cred.pid, error.description);
                return client_queue_error(c, error.has_id ? error.id : -1, error.code, error.description);
        }
        if (r < 0)
                return r;

        return client_dispatch(c, request);
}

/* Handles the complete lines in the input buffer, as long as the client
 * reads its replies. Returns < 0 on a local error. */
static int client_process(control_client *c) {
        size_t done = 0;
        int r = 0;

        while (!c->closing && client_pending(c) < CONTROL_OUTPUT_HIGH) {
                size_t len, consumed;

                r = ctlproto_next_line(c->in + done, c->in_size - done, CTLPROTO_LINE_MAX, &len, &consumed);
                if (r == -EMSGSIZE) {
                        char d[64];

                        /* The rest of the line cannot be told from the next
                         * request, so the connection cannot go on. */
                        log_debug("Control client %d sent a line longer than %u bytes, closing.",
                                  (int) c->cred.pid, CTLPROTO_LINE_MAX);
                        snprintf(d, sizeof(d), "Line too long (more than %u bytes)", CTLPROTO_LINE_MAX);
                        c->closing = true;
                        r = client_queue_error(c, -1, CTLPROTO_BAD_REQUEST, d);
                        break;
                }
                if (r <= 0)
                        break;

                r = client_handle_line(c, c->in + done, len);
                done += consumed;
                if (r < 0)
                        break;
        }

        if (done > 0) {
                memmove(c->in, c->in + done, c->in_size - done);
                c->in_size -= done;
        }
        return r < 0 ? r : 0;
}

/* Returns 0 when the client lives on, < 0 when it was freed. */
static int client_read(control_client *c) {
        ssize_t n;

        /* A full buffer is drained by client_process() first; reading 0
         * bytes would look like a hang-up. */
        if (c->in_size > CTLPROTO_LINE_MAX)
                return 0;

        /* One read per wakeup: level-triggered epoll calls again, and other
         * clients get their turn in between. */
        n = recv(c->fd, c->in + c->in_size, CTLPROTO_LINE_MAX + 1 - c->in_size, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                log_debug_errno(errno, "Failed to read from control client %d: %m", (int) c->cred.pid);
                client_free(c);
                return -ECONNRESET;
        }
        if (n == 0) {
                /* Answer what came complete; a half-sent request is dropped. */
                (void) client_process(c);
                if (c->in_size > 0)
                        log_debug("Control client %d hung up in the middle of a request.", (int) c->cred.pid);
                c->in_size = 0;
                c->closing = true;
                return 0;
        }

        c->in_size += (size_t) n;
        (void) sd_event_source_set_time_relative(c->idle_source, c->server->idle_usec);
        return 0;
}

static int client_update_events(control_client *c) {
        uint32_t events = 0;

        if (!c->closing && client_pending(c) < CONTROL_OUTPUT_HIGH && c->in_size <= CTLPROTO_LINE_MAX)
                events |= EPOLLIN;
        if (client_pending(c) > 0)
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io_source, events);
}

static int client_on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        control_client *c = userdata;
        int r;

        if (revents & EPOLLIN) {
                if (client_read(c) < 0)
                        return 0;
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                log_debug("Control client %d hung up.", (int) c->cred.pid);
                client_free(c);
                return 0;
        }

        r = client_process(c);
        if (r < 0) {
                log_error_errno(r, "Failed to answer control client %d, dropping it: %m", (int) c->cred.pid);
                client_free(c);
                return 0;
        }

        if (client_flush(c) < 0)
                return 0;

        r = client_update_events(c);
        if (r < 0) {
                log_error_errno(r, "Failed to update control client %d: %m", (int) c->cred.pid);
                client_free(c);
        }
        return 0;
}

static int client_on_idle(sd_event_source *source, uint64_t usec, void *userdata) {
        control_client *c = userdata;

        log_info("Control client %d made no progress for %" PRIu64 " ms, dropping it.", (int) c->cred.pid,
                 c->server->idle_usec / 1000);
        client_free(c);
        return 0;
}

static control_client *client_free(control_client *c) {
        control_server *s;

        if (!c)
                return NULL;
        s = c->server;
        if (c->prev)
                c->prev->next = c->next;
        else if (s->clients == c)
                s->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_clients--;

        while (c->deferred) {
                control_deferred *d = c->deferred;

                c->deferred = d->next;
                d->client = NULL;
                d->prev = d->next = NULL;
        }

        sd_event_source_disable_unref(c->io_source);
        sd_event_source_disable_unref(c->idle_source);
        safe_close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
        return NULL;
}

static int client_new(control_server *s, int fd) {
        _cleanup_close_ int fd_owned = fd;
        control_client *c;
        socklen_t len;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->server = s;
        c->fd = -1;
        c->next = s->clients;
        if (s->clients)
                s->clients->prev = c;
        s->clients = c;
        s->n_clients++;
        c->fd = TAKE_FD(fd_owned);

        len = sizeof(c->cred);
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
                r = negative_errno();
                goto fail;
        }

        c->in = malloc(CTLPROTO_LINE_MAX + 1);
        if (!c->in) {
                r = -ENOMEM;
                goto fail;
        }

        r = sd_event_add_io(s->event, &c->io_source, c->fd, EPOLLIN, client_on_io, c);
        if (r < 0)
                goto fail;
        r = sd_event_add_time_relative(s->event, &c->idle_source, CLOCK_MONOTONIC, s->idle_usec, 0,
                                       client_on_idle, c);
        if (r < 0)
                goto fail;

        log_debug("Control client connected: pid %d uid %u gid %u.", (int) c->cred.pid,
                  (unsigned) c->cred.uid, (unsigned) c->cred.gid);
        return 0;

fail:
        client_free(c);
        return r;
}

/* --- server ------------------------------------------------------------------ */

static int server_on_listen(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        control_server *s = userdata;
        _cleanup_close_ int cfd = -1;
        int r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "Failed to accept a control connection: %m");
                return 0;
        }

        if (s->n_clients >= s->clients_max) {
                static const char busy[] = "{\"id\":null,\"ok\":false,\"error\":{\"code\":503,\"description\":\"Too many clients\"}}\n";

                log_notice("Refusing a control connection: %u clients already.", s->n_clients);
                (void) send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                return 0;
        }

        r = client_new(s, TAKE_FD(cfd));
        if (r < 0)
                log_warning_errno(r, "Failed to set up a control connection: %m");
        return 0;
}


int control_server_new(sd_event *e, const char *path, control_server **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        control_server *s;
        struct group *g;
        struct stat st;
        mode_t old_umask;
        int r;

        if (!e || !path || !ret || path[0] != '/')
                return -EINVAL;
        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Control socket path %s is too long.", path);
        strcpy(sa.sun_path, path);

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = -1;
        s->event = sd_event_ref(e);
        s->clients_max = CONTROL_CLIENTS_MAX;
        s->output_max = CONTROL_OUTPUT_MAX;
        s->idle_usec = CONTROL_IDLE_TIMEOUT_USEC;

        s->path = strdup(path);
        if (!s->path) {
                r = log_oom();
                goto fail;
        }

        r = unix_socket_make_parent_dir(path);
        if (r < 0) {
                log_error_errno(r, "Failed to create the directory for %s: %m", path);
                goto fail;
        }
        r = unix_socket_remove_stale(path);
        if (r == -EADDRINUSE) {
                log_error("Control socket %s is in use: is another rethink-agent running?", path);
                goto fail;
        }
        if (r == -EEXIST) {
                log_error("%s exists and is not a socket; not replacing it.", path);
                goto fail;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to check for a stale control socket %s: %m", path);
                goto fail;
        }

        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
                r = log_error_errno(errno, "Failed to create the control socket: %m");
                goto fail;
        }

        /* bind() creates the file with the umask applied: this way it never
         * exists with a wider mode than 0660, not even for a moment. */
        old_umask = umask(0777 & ~CONTROL_SOCKET_MODE);
        r = bind(s->fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old_umask);
        if (r < 0) {
                r = log_error_errno(errno, "Failed to bind the control socket to %s: %m", path);
                goto fail;
        }
        if (stat(path, &st) < 0) {
                r = log_error_errno(errno, "Failed to stat %s: %m", path);
                goto fail;
        }
        s->dev = st.st_dev;
        s->ino = st.st_ino;

        /* Members of the group may use the agent without being root. */
        errno = 0;
        g = getgrnam(CONTROL_SOCKET_GROUP);
        if (g) {
                if (lchown(path, (uid_t) -1, g->gr_gid) < 0)
                        log_warning_errno(errno, "Failed to give %s to group %s: %m", path, CONTROL_SOCKET_GROUP);
        } else
                log_debug("No group %s, control socket %s is for root only.", CONTROL_SOCKET_GROUP, path);

        if (listen(s->fd, SOMAXCONN) < 0) {
                r = log_error_errno(errno, "Failed to listen on %s: %m", path);
                goto fail;
        }

        r = sd_event_add_io(e, &s->listen_source, s->fd, EPOLLIN, server_on_listen, s);
        if (r < 0) {
                log_error_errno(r, "Failed to watch the control socket: %m");
                goto fail;
        }

        log_debug("Control socket listening on %s.", path);
        *ret = s;
        return 0;

fail:
        control_server_free(s);
        return r;
}

control_server *control_server_free(control_server *s) {
        struct stat st;

        if (!s)
                return NULL;

        while (s->clients)
                client_free(s->clients);

        sd_event_source_disable_unref(s->listen_source);
        /* Only our own file: a successor may already have replaced it. */
        if (s->fd >= 0 && s->ino != 0 && lstat(s->path, &st) == 0 && st.st_dev == s->dev &&
            st.st_ino == s->ino)
                (void) unlink(s->path);
        safe_close(s->fd);

        for (size_t i = 0; i < s->n_commands; i++)
                free(s->commands[i].name);
        free(s->commands);
        free(s->path);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

int control_server_add_command(control_server *s, const char *name, control_handler_t handler,
                               void *userdata) {
        control_command *p;
        char *n;

        if (!s || !handler || !ctlproto_command_is_valid(name))
                return -EINVAL;
        if (server_find_command(s, name))
                return -EEXIST;

        n = strdup(name);
        if (!n)
                return -ENOMEM;
        p = reallocarray(s->commands, s->n_commands + 1, sizeof(*p));
        if (!p)
                return free(n), -ENOMEM;
        s->commands = p;
        s->commands[s->n_commands++] = (control_command) {
                .name = n,
                .handler = handler,
                .userdata = userdata,
        };
        return 0;
}

void control_server_set_limits(control_server *s, unsigned clients_max, size_t output_max,
                               uint64_t idle_usec) {
        if (clients_max > 0)
                s->clients_max = clients_max;
        if (output_max > 0)
                s->output_max = MIN(output_max, (size_t) CTLPROTO_REPLY_MAX);
        if (idle_usec > 0)
                s->idle_usec = idle_usec;
}

const char *control_server_get_path(const control_server *s) {
        return s->path;
}

unsigned control_server_get_n_clients(const control_server *s) {
        return s->n_clients;
}
