/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "agent-client.h"
#include "log.h"

struct agent_client {
        int fd;
        int64_t next_id;
        char *buf;
        size_t size, alloc;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

static int wait_fd(int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                uint64_t now = now_usec();
                int r;

                if (now >= deadline)
                        return -ETIMEDOUT;
                /* Round up, so we never spin on a sub-millisecond rest. */
                r = poll(&p, 1, (int) MIN((deadline - now + 999) / 1000, (uint64_t) INT32_MAX));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negative_errno();
                if (r > 0)
                        return 0;
        }
}

int agent_client_connect(const char *path, uint64_t timeout_usec, agent_client **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        struct timeval tv = {
                .tv_sec = (time_t) (timeout_usec / 1000000ULL),
                .tv_usec = (suseconds_t) (timeout_usec % 1000000ULL),
        };
        agent_client *c;

        if (!path || !ret)
                return -EINVAL;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        /* AF_UNIX connect() waits for room in a full backlog up to the send
         * timeout; that bounds it. */
        if (timeout_usec > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : negative_errno();

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = TAKE_FD(fd);
        c->next_id = 1;
        *ret = c;
        return 0;
}

agent_client *agent_client_free(agent_client *c) {
        if (!c)
                return NULL;
        safe_close(c->fd);
        free(c->buf);
        free(c);
        return NULL;
}

static int send_all(agent_client *c, const char *s, size_t n, uint64_t deadline) {
        while (n > 0) {
                ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        int r;

                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return errno == EPIPE ? -ECONNRESET : negative_errno();
                        r = wait_fd(c->fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                s += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Reads until a complete line is buffered; returns its length. */
static int recv_line(agent_client *c, uint64_t deadline, size_t *ret_len, size_t *ret_consumed) {
        for (;;) {
                ssize_t k;
                int r;

                r = ctlproto_next_line(c->buf, c->size, CTLPROTO_REPLY_MAX, ret_len, ret_consumed);
                if (r == -EMSGSIZE)
                        return -EBADMSG;
                if (r > 0)
                        return 0;

                if (c->alloc - c->size < 4096) {
                        size_t want = MAX(c->alloc * 2, (size_t) 16384);
                        char *p = realloc(c->buf, want);
                        if (!p)
                                return -ENOMEM;
                        c->buf = p;
                        c->alloc = want;
                }
                k = recv(c->fd, c->buf + c->size, c->alloc - c->size, MSG_DONTWAIT);
                if (k == 0)
                        return -ECONNRESET;
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return negative_errno();
                        r = wait_fd(c->fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                c->size += (size_t) k;
        }
}

int agent_client_call(agent_client *c, const char *command, json_t *args, uint64_t timeout_usec,
                      ctl_reply **ret_reply) {
        _cleanup_ctl_request_ ctl_request *req = NULL;
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        _cleanup_free_ char *line = NULL;
        uint64_t deadline = timeout_usec > 0 ? now_usec() + timeout_usec : UINT64_MAX;
        size_t len, consumed;
        ctlproto_error e;
        int64_t id;
        int r;

        if (!c || !ret_reply)
                return -EINVAL;

        id = c->next_id++;
        r = ctl_request_new(id, command, args, &req);
        if (r < 0)
                return r;
        r = ctl_request_format(req, &line);
        if (r < 0)
                return r;
        r = send_all(c, line, strlen(line), deadline);
        if (r < 0)
                return r;

        r = recv_line(c, deadline, &len, &consumed);
        if (r < 0)
                return r;
        r = ctl_reply_parse(c->buf, len, &reply, &e);
        memmove(c->buf, c->buf + consumed, c->size - consumed);
        c->size -= consumed;
        if (r < 0) {
                log_debug("Invalid reply from the agent: %s", e.description);
                return r;
        }

        /* A reply to no request in particular (id null) is the server
         * rejecting the connection or the line; anything else must be ours. */
        if (ctl_reply_get_id(reply) != id && !(ctl_reply_get_id(reply) < 0 && !ctl_reply_is_ok(reply)))
                return -EBADMSG;

        *ret_reply = TAKE_PTR(reply);
        return 0;
}
