/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "h2-transport.h"
#include "log.h"
#include "tls.h"

/* Bytes read per wakeup before yielding to other event sources. */
#define READ_BUDGET (256U * 1024U)
#define READ_CHUNK (16U * 1024U)

enum transport_state {
        STATE_CONNECTING,
        STATE_HANDSHAKE,
        STATE_READY,
        STATE_CLOSED,
};

struct H2Transport {
        unsigned n_ref;
        sd_event *event;
        int fd;
        SSL *ssl;
        bool is_server;

        sd_event_source *io, *defer, *timer;
        uint32_t io_events;

        enum transport_state state;
        bool close_after_flush;
        bool read_more;
        bool in_dispatch;

        uint8_t *out;
        size_t out_start, out_end, out_alloc;

        const char *reason;
        const H2TransportOps *ops;
        void *userdata;
};

static void transport_release(H2Transport *t) {
        t->io = sd_event_source_disable_unref(t->io);
        t->defer = sd_event_source_disable_unref(t->defer);
        t->timer = sd_event_source_disable_unref(t->timer);
        if (t->ssl) {
                /* Best effort close_notify; never waits for the peer's. */
                if (t->state == STATE_READY)
                        (void) SSL_shutdown(t->ssl);
                ERR_clear_error();
                SSL_free(t->ssl);
                t->ssl = NULL;
        }
        t->fd = safe_close(t->fd);
        t->state = STATE_CLOSED;
}

H2Transport *h2_transport_ref(H2Transport *t) {
        if (t)
                t->n_ref++;
        return t;
}

H2Transport *h2_transport_unref(H2Transport *t) {
        if (!t || --t->n_ref > 0)
                return NULL;
        transport_release(t);
        free(t->out);
        sd_event_unref(t->event);
        free(t);
        return NULL;
}

void h2_transport_close(H2Transport *t) {
        if (!t || t->state == STATE_CLOSED)
                return;
        t->ops = NULL;
        transport_release(t);
}

/* Closes and tells the owner; the caller holds a reference. */
static void transport_fail(H2Transport *t, int error, const char *reason) {
        const H2TransportOps *ops = t->ops;

        if (t->state == STATE_CLOSED)
                return;
        if (reason)
                t->reason = reason;
        log_debug_errno(error, "h2 transport closed: %s", strna(t->reason));
        transport_release(t);
        t->ops = NULL;
        if (ops && ops->on_close)
                ops->on_close(t, error, t->reason, t->userdata);
}

static int set_io_events(H2Transport *t, uint32_t events) {
        int r;

        if (t->io_events == events || !t->io)
                return 0;
        r = sd_event_source_set_io_events(t->io, events);
        if (r < 0)
                return r;
        t->io_events = events;
        return 0;
}

int h2_transport_queue(H2Transport *t, const void *data, size_t size) {
        if (!t || t->state == STATE_CLOSED)
                return -ENOTCONN;
        if (size == 0)
                return 0;

        if (t->out_alloc - t->out_end < size) {
                size_t pending = t->out_end - t->out_start;

                /* Compact first: the pending part usually fits. */
                if (t->out_start > 0) {
                        memmove(t->out, t->out + t->out_start, pending);
                        t->out_start = 0;
                        t->out_end = pending;
                }
                if (t->out_alloc - t->out_end < size) {
                        size_t n = MAX(t->out_alloc * 2, pending + size);
                        uint8_t *p;

                        n = MAX(n, (size_t) H2_TRANSPORT_FILL_BYTES + 16384);
                        p = realloc(t->out, n);
                        if (!p)
                                return -ENOMEM;
                        t->out = p;
                        t->out_alloc = n;
                }
        }
        memcpy(t->out + t->out_end, data, size);
        t->out_end += size;
        return 0;
}

size_t h2_transport_queued(H2Transport *t) {
        return t ? t->out_end - t->out_start : 0;
}

bool h2_transport_is_ready(H2Transport *t) {
        return t && t->state == STATE_READY;
}

bool h2_transport_is_closed(H2Transport *t) {
        return !t || t->state == STATE_CLOSED;
}

const char *h2_transport_get_reason(H2Transport *t) {
        return t ? t->reason : NULL;
}

void h2_transport_kick(H2Transport *t) {
        /* Inside dispatch the flush at its end covers this. */
        if (!t || t->state != STATE_READY || t->in_dispatch || !t->defer)
                return;
        (void) sd_event_source_set_enabled(t->defer, SD_EVENT_ONESHOT);
}

void h2_transport_close_after_flush(H2Transport *t) {
        if (!t || t->state == STATE_CLOSED)
                return;
        t->close_after_flush = true;
        if (t->state == STATE_READY && t->defer && !t->in_dispatch)
                (void) sd_event_source_set_enabled(t->defer, SD_EVENT_ONESHOT);
}

static int map_ssl_error(H2Transport *t, int ret) {
        int e = SSL_get_error(t->ssl, ret);

        switch (e) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
                return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN:
                return 0;
        case SSL_ERROR_SYSCALL:
                ERR_clear_error();
                t->reason = "connection reset";
                return errno > 0 && errno != EAGAIN ? -errno : -ECONNRESET;
        default: {
                unsigned long l = ERR_peek_last_error();
                const char *s = l ? ERR_reason_error_string(l) : NULL;

                /* A peer that closes without close_notify: HTTP/2 framing
                 * shows truncation itself, so this is just EOF. */
                if (ERR_GET_LIB(l) == ERR_LIB_SSL && ERR_GET_REASON(l) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                        ERR_clear_error();
                        return 0;
                }
                ERR_clear_error();
                t->reason = s ?: "TLS error";
                return -EPROTO;
        }
        }
}

/* > 0 bytes written, -EAGAIN (wait for writable), -EINPROGRESS (wait for
 * readable), or an error. */
static ssize_t write_some(H2Transport *t) {
        size_t n = t->out_end - t->out_start;
        ssize_t k;

        if (t->ssl) {
                int w;

                ERR_clear_error();
                w = SSL_write(t->ssl, t->out + t->out_start, (int) MIN(n, (size_t) INT32_MAX));
                if (w > 0)
                        return w;
                /* Needs the peer's bytes first: wait for EPOLLIN only, or
                 * a writable socket would wake us in a loop. */
                if (SSL_get_error(t->ssl, w) == SSL_ERROR_WANT_READ)
                        return -EINPROGRESS;
                k = map_ssl_error(t, w);
                return k == 0 ? -EPIPE : k;
        }

        k = send(t->fd, t->out + t->out_start, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return -EAGAIN;
                t->reason = "write failed";
                return negative_errno();
        }
        return k;
}

/* 0 while open, 1 when done flushing and closing was requested. */
static int transport_flush(H2Transport *t) {
        int r;

        for (;;) {
                if (t->out_start == t->out_end) {
                        t->out_start = t->out_end = 0;
                        if (t->ops && t->ops->fill) {
                                r = t->ops->fill(t, t->userdata);
                                if (r < 0)
                                        return r;
                                if (t->state != STATE_READY)
                                        return 0;
                        }
                        if (t->out_end == 0)
                                break;
                }

                ssize_t k = write_some(t);
                if (k == -EAGAIN)
                        return set_io_events(t, EPOLLIN | EPOLLOUT);
                if (k == -EINPROGRESS)
                        return set_io_events(t, EPOLLIN);
                if (k < 0)
                        return (int) k;
                t->out_start += (size_t) k;
        }

        r = set_io_events(t, EPOLLIN);
        if (r < 0)
                return r;
        return t->close_after_flush ? 1 : 0;
}

/* 0 on EAGAIN or budget spent, 1 on EOF, negative on error. */
static int transport_read(H2Transport *t) {
        uint8_t buf[READ_CHUNK];
        size_t total = 0;

        t->read_more = false;
        while (t->state == STATE_READY) {
                ssize_t n;

                if (total >= READ_BUDGET) {
                        /* Buffered TLS records do not wake epoll again. */
                        t->read_more = true;
                        (void) sd_event_source_set_enabled(t->defer, SD_EVENT_ONESHOT);
                        return 0;
                }

                if (t->ssl) {
                        ERR_clear_error();
                        int k = SSL_read(t->ssl, buf, sizeof(buf));
                        if (k <= 0) {
                                int r = map_ssl_error(t, k);
                                if (r == -EAGAIN)
                                        return 0;
                                return r == 0 ? 1 : r;
                        }
                        n = k;
                } else {
                        n = recv(t->fd, buf, sizeof(buf), MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno == EAGAIN || errno == EINTR)
                                        return 0;
                                t->reason = "read failed";
                                return negative_errno();
                        }
                        if (n == 0)
                                return 1;
                }

                total += (size_t) n;
                int r = t->ops->on_data(t, buf, (size_t) n, t->userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int transport_become_ready(H2Transport *t) {
        t->state = STATE_READY;
        t->timer = sd_event_source_disable_unref(t->timer);
        if (t->ops && t->ops->on_ready)
                return t->ops->on_ready(t, t->userdata);
        return 0;
}

/* 0 when still in progress or done, negative on failure. */
static int transport_handshake(H2Transport *t) {
        int r;

        ERR_clear_error();
        r = SSL_do_handshake(t->ssl);
        if (r != 1) {
                int e = SSL_get_error(t->ssl, r);
                const char *reason;

                if (e == SSL_ERROR_WANT_READ)
                        return set_io_events(t, EPOLLIN);
                if (e == SSL_ERROR_WANT_WRITE)
                        return set_io_events(t, EPOLLIN | EPOLLOUT);
                r = tls_handshake_error(t->ssl, &reason);
                if (e == SSL_ERROR_SYSCALL && r == -ECONNRESET)
                        reason = "connection closed during TLS handshake";
                t->reason = reason;
                return r;
        }

        if (tls_check_alpn_h2(t->ssl) < 0) {
                t->reason = t->is_server ? "client did not offer ALPN h2" : "server did not select ALPN h2";
                return -EPROTO;
        }
        r = set_io_events(t, EPOLLIN);
        if (r < 0)
                return r;
        return transport_become_ready(t);
}

static int transport_start_tls(H2Transport *t, SSL_CTX *tls, const char *server_name) {
        int r;

        t->ssl = SSL_new(tls);
        if (!t->ssl)
                return -ENOMEM;
        if (SSL_set_fd(t->ssl, t->fd) != 1)
                return -ENOMEM;
        if (t->is_server)
                SSL_set_accept_state(t->ssl);
        else {
                r = tls_client_setup(t->ssl, server_name);
                if (r < 0)
                        return r;
                SSL_set_connect_state(t->ssl);
        }
        t->state = STATE_HANDSHAKE;
        return 0;
}

static void transport_dispatch(H2Transport *t, uint32_t revents) {
        _cleanup_h2_transport_ _unused_ H2Transport *ref = h2_transport_ref(t);
        int r = 0;

        if (t->state == STATE_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);

                if (!(revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return;
                if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err != 0) {
                        transport_fail(t, -err, "connect failed");
                        return;
                }
                if (t->ssl) {
                        t->state = STATE_HANDSHAKE;
                        (void) set_io_events(t, EPOLLIN | EPOLLOUT);
                } else {
                        (void) set_io_events(t, EPOLLIN);
                        t->in_dispatch = true;
                        r = transport_become_ready(t);
                        t->in_dispatch = false;
                        if (r < 0)
                                goto fail;
                        revents = 0;
                }
        }

        if (t->state == STATE_HANDSHAKE) {
                t->in_dispatch = true;
                r = transport_handshake(t);
                t->in_dispatch = false;
                if (r < 0)
                        goto fail;
                if (t->state != STATE_READY)
                        return;
                /* TLS 1.3 may carry application data right behind the
                 * handshake; read it now. */
                revents |= EPOLLIN;
        }

        if (t->state != STATE_READY)
                return;

        t->in_dispatch = true;
        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) || t->read_more) {
                r = transport_read(t);
                if (r != 0) {
                        t->in_dispatch = false;
                        if (r > 0) {
                                transport_fail(t, 0, "connection closed by peer");
                                return;
                        }
                        goto fail;
                }
        }
        if (t->state == STATE_READY)
                r = transport_flush(t);
        t->in_dispatch = false;
        if (r > 0) {
                transport_fail(t, 0, NULL);
                return;
        }
        if (r < 0)
                goto fail;
        return;

fail:
        t->in_dispatch = false;
        transport_fail(t, r, NULL);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        transport_dispatch(userdata, revents);
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        transport_dispatch(userdata, 0);
        return 0;
}

static int on_connect_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        H2Transport *t = userdata;
        _cleanup_h2_transport_ _unused_ H2Transport *ref = h2_transport_ref(t);

        transport_fail(t, -ETIMEDOUT, "connect timeout");
        return 0;
}

static int transport_new(sd_event *e, int fd, bool is_server, const H2TransportOps *ops,
                         void *userdata, H2Transport **ret) {
        _cleanup_h2_transport_ H2Transport *t = NULL;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t) {
                safe_close(fd);
                return -ENOMEM;
        }
        t->n_ref = 1;
        t->fd = fd;
        t->event = sd_event_ref(e);
        t->is_server = is_server;
        t->ops = ops;
        t->userdata = userdata;
        t->state = STATE_CONNECTING;

        r = sd_event_add_defer(e, &t->defer, on_defer, t);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(t->defer, SD_EVENT_OFF);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(t);
        return 0;
}

int h2_transport_new_accepted(sd_event *e, int fd, SSL_CTX *tls, const H2TransportOps *ops,
                              void *userdata, H2Transport **ret) {
        _cleanup_h2_transport_ H2Transport *t = NULL;
        int r, one = 1;

        if (!e || fd < 0 || !ops || !ret) {
                safe_close(fd);
                return -EINVAL;
        }

        r = transport_new(e, fd, true, ops, userdata, &t);
        if (r < 0)
                return r;

        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (tls) {
                r = transport_start_tls(t, tls, NULL);
                if (r < 0)
                        return r;
        }

        t->io_events = EPOLLIN;
        r = sd_event_add_io(e, &t->io, fd, t->io_events, on_io, t);
        if (r < 0)
                return r;

        if (!tls) {
                /* The owner's on_ready runs before the first byte. */
                t->state = STATE_READY;
                t->in_dispatch = true;
                r = ops->on_ready ? ops->on_ready(t, userdata) : 0;
                t->in_dispatch = false;
                if (r < 0)
                        return r;
                (void) sd_event_source_set_enabled(t->defer, SD_EVENT_ONESHOT);
        }

        *ret = TAKE_PTR(t);
        return 0;
}

int h2_transport_connect(sd_event *e, const struct sockaddr *sa, socklen_t salen, SSL_CTX *tls,
                         const char *server_name, uint64_t timeout_usec, const H2TransportOps *ops,
                         void *userdata, H2Transport **ret) {
        _cleanup_h2_transport_ H2Transport *t = NULL;
        _cleanup_close_ int fd = -1;
        int r, one = 1;

        if (!e || !sa || !ops || !ret || (tls && !server_name))
                return -EINVAL;

        fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0)
                return negative_errno();
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS)
                return negative_errno();

        r = transport_new(e, TAKE_FD(fd), false, ops, userdata, &t);
        if (r < 0)
                return r;

        if (tls) {
                r = transport_start_tls(t, tls, server_name);
                if (r < 0)
                        return r;
                t->state = STATE_CONNECTING;
        }

        /* Completion of a non-blocking connect shows as writability. */
        t->io_events = EPOLLOUT;
        r = sd_event_add_io(e, &t->io, t->fd, t->io_events, on_io, t);
        if (r < 0)
                return r;

        if (timeout_usec > 0) {
                r = sd_event_add_time_relative(e, &t->timer, CLOCK_MONOTONIC, timeout_usec, 0,
                                               on_connect_timeout, t);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(t);
        return 0;
}
