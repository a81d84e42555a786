/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The same fan-out load as msg-load, through an MQTT broker (mosquitto)
 * with libmosquitto, for bench/msg-fanout's comparison:
 *
 *   msg-mqtt-load --port N [--host A] [--publishers P] [--subscribers S]
 *                 [--seconds T] [--rate R] [--window W] [--qos 0|1]
 *
 * Subscribers subscribe to "bench/#" with the given QoS, publishers publish
 * the 100-byte SenML payload to "bench/p<i>". The window counts messages
 * not yet acknowledged (QoS 1) or not yet written (QoS 0). Every client's
 * socket is watched on one sd-event loop, as msg-load does with h2. */

#include <mosquitto.h>
#include <sys/ioctl.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "msg-bench-common.h"

typedef struct Load Load;

typedef struct Client {
        Load *load;
        unsigned index;
        bool publisher, connected, subscribed;
        struct mosquitto *mosq;
        sd_event_source *io;
        uint64_t sent;
        unsigned in_flight;
        char topic[32];
} Client;

struct Load {
        sd_event *event;
        mb_options o;
        mb_stats stats;
        Client *clients;
        unsigned n_clients, ready, failed;
        bool running;
};

static void update_io(Client *c) {
        (void) sd_event_source_set_io_events(c->io, EPOLLIN | (mosquitto_want_write(c->mosq) ? EPOLLOUT : 0));
}

static void publish_due(Client *c) {
        Load *l = c->load;
        unsigned due;

        if (!l->running)
                return;
        due = mb_due(&l->o, c->sent, c->in_flight, mb_now(), l->stats.start_usec);
        while (due-- > 0) {
                char payload[MB_PAYLOAD_SIZE + 1];

                (void) mb_payload(payload, c->index, mb_now());
                if (mosquitto_publish(c->mosq, NULL, c->topic, MB_PAYLOAD_SIZE, payload, (int) l->o.qos, false) !=
                    MOSQ_ERR_SUCCESS) {
                        l->stats.publish_errors++;
                        break;
                }
                c->sent++;
                c->in_flight++;
                l->stats.published++;
        }
        update_io(c);
}

static void on_connect(struct mosquitto *m, void *userdata, int rc) {
        Client *c = userdata;

        if (rc != 0) {
                c->load->failed++;
                return;
        }
        c->connected = true;
        if (c->publisher)
                c->load->ready++;
        else
                (void) mosquitto_subscribe(m, NULL, "bench/#", (int) c->load->o.qos);
}

static void on_subscribe(struct mosquitto *m, void *userdata, int mid, int qos_count, const int *granted) {
        Client *c = userdata;

        c->subscribed = true;
        c->load->ready++;
}

static void on_publish(struct mosquitto *m, void *userdata, int mid) {
        Client *c = userdata;

        if (c->in_flight > 0)
                c->in_flight--;
        publish_due(c);
}

static void on_message(struct mosquitto *m, void *userdata, const struct mosquitto_message *msg) {
        Client *c = userdata;
        uint64_t stamp;

        if (msg->payloadlen == MB_PAYLOAD_SIZE && mb_find_stamp(msg->payload, (size_t) msg->payloadlen, &stamp))
                mb_record(&c->load->stats, stamp);
        else
                c->load->stats.bad++;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Client *c = userdata;
        int rc = MOSQ_ERR_SUCCESS;

        /* libmosquitto reads one packet per call: keep reading while the
         * socket holds more, as its own loop would. */
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                for (unsigned i = 0; i < 1024 && rc == MOSQ_ERR_SUCCESS; i++) {
                        int avail = 0;

                        rc = mosquitto_loop_read(c->mosq, 1);
                        if (ioctl(fd, FIONREAD, &avail) < 0 || avail <= 0)
                                break;
                }
        if (rc == MOSQ_ERR_SUCCESS && (revents & EPOLLOUT))
                rc = mosquitto_loop_write(c->mosq, 64);
        if (rc != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "msg-mqtt-load: client %u: %s\n", c->index, mosquitto_strerror(rc));
                c->load->failed++;
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        update_io(c);
        return 0;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Load *l = userdata;

        for (unsigned i = 0; i < l->n_clients; i++) {
                Client *c = &l->clients[i];

                (void) mosquitto_loop_misc(c->mosq);
                if (c->publisher)
                        publish_due(c);
                update_io(c);
        }
        (void) sd_event_source_set_time_relative(s, 1000ULL);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static bool run_until(Load *l, bool (*cond)(Load *l), uint64_t limit_usec) {
        uint64_t deadline = mb_now() + limit_usec;

        while (!cond(l) && !l->failed && mb_now() < deadline)
                if (sd_event_run(l->event, 100000) < 0)
                        return false;
        return cond(l);
}

static bool all_ready(Load *l) {
        return l->ready >= l->n_clients;
}

static bool all_delivered(Load *l) {
        return l->stats.delivered >= l->stats.published * l->o.subscribers;
}

static bool never(Load *l) {
        return false;
}

int main(int argc, char **argv) {
        Load l = {};
        sd_event_source *tick = NULL;

        if (mb_parse_options(argc, argv, &l.o) < 0) {
                fprintf(stderr, "usage: msg-mqtt-load --port N [--host A] [--publishers P] [--subscribers S] "
                                "[--seconds T] [--rate R] [--window W] [--qos 0|1]\n");
                return 2;
        }
        mosquitto_lib_init();
        l.stats.hist = calloc(MB_HIST_BUCKETS, sizeof(uint32_t));
        l.n_clients = l.o.publishers + l.o.subscribers;
        l.clients = calloc(l.n_clients, sizeof(Client));
        if (!l.stats.hist || !l.clients || sd_event_new(&l.event) < 0)
                return 1;

        for (unsigned i = 0; i < l.n_clients; i++) {
                Client *c = &l.clients[i];
                char id[32];

                c->load = &l;
                c->publisher = i < l.o.publishers;
                c->index = c->publisher ? i : i - l.o.publishers;
                snprintf(id, sizeof(id), "bench-%c%u", c->publisher ? 'p' : 's', c->index);
                snprintf(c->topic, sizeof(c->topic), "bench/p%u", c->index);
                c->mosq = mosquitto_new(id, true, c);
                if (!c->mosq)
                        return 1;
                mosquitto_connect_callback_set(c->mosq, on_connect);
                mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
                mosquitto_publish_callback_set(c->mosq, on_publish);
                mosquitto_message_callback_set(c->mosq, on_message);
                (void) mosquitto_max_inflight_messages_set(c->mosq, l.o.window);
                if (mosquitto_connect(c->mosq, l.o.host, (int) l.o.port, 60) != MOSQ_ERR_SUCCESS) {
                        fprintf(stderr, "msg-mqtt-load: cannot connect to %s:%u\n", l.o.host, l.o.port);
                        return 1;
                }
                if (sd_event_add_io(l.event, &c->io, mosquitto_socket(c->mosq), EPOLLIN | EPOLLOUT, on_io, c) < 0)
                        return 1;
        }
        if (sd_event_add_time_relative(l.event, &tick, CLOCK_MONOTONIC, 1000ULL, 0, on_tick, &l) < 0)
                return 1;
        if (!run_until(&l, all_ready, 30 * 1000000ULL)) {
                fprintf(stderr, "msg-mqtt-load: set-up failed (%u of %u ready)\n", l.ready, l.n_clients);
                return 1;
        }

        l.running = true;
        l.stats.start_usec = mb_now();
        (void) run_until(&l, never, (uint64_t) l.o.seconds * 1000000ULL);
        l.running = false;
        l.stats.stop_usec = mb_now();
        (void) run_until(&l, all_delivered, 5 * 1000000ULL);
        l.stats.stop_usec = MAX(l.stats.stop_usec, l.stats.last_usec);
        mb_report(l.o.qos ? "mqtt-qos1" : "mqtt-qos0", &l.o, &l.stats);

        sd_event_source_disable_unref(tick);
        for (unsigned i = 0; i < l.n_clients; i++) {
                sd_event_source_disable_unref(l.clients[i].io);
                mosquitto_disconnect(l.clients[i].mosq);
                mosquitto_destroy(l.clients[i].mosq);
        }
        mosquitto_lib_cleanup();
        free(l.clients);
        free(l.stats.hist);
        sd_event_unref(l.event);
        return l.failed ? 1 : 0;
}
