/* vsock: the controller's broker for the virtio-vsock device's host sockets:
 * it listens on --vsock socket= and accepts, and connects to <socket>_<port>
 * for the guest, so that the sandboxed worker needs no socket call. */
#ifndef BH_CONTROLLER_VSOCK_H
#define BH_CONTROLLER_VSOCK_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct bh_vsock_broker;

/* Connections accepted per wake-up of the loop: a flood of host clients
 * must not starve everything else the controller serves. */
#define BH_VSOCK_ACCEPT_BURST 16

struct bh_binder;

/*
 * From now on, bh_vsock_broker_open gets its listeners from binder
 * (borrowed; NULL: makes them itself again). Called once the controller's
 * filter, which has no bind or listen, is loaded.
 */
void bh_vsock_set_binder(struct bh_binder *binder);

/*
 * Creates, binds and listens on path (a stale socket file at path, one
 * nobody listens on, is replaced; any other existing file is refused with a
 * message naming it): itself, or through the binder once one is set, so
 * before and after the controller's filter alike. 0, or -errno with the
 * reason in err (-ECHILD: the binder is gone).
 */
int bh_vsock_broker_open(const char *path, struct bh_vsock_broker **out,
			 char *err, size_t errlen);

/* Accepts in base's loop; each accepted connection (non-blocking, CLOEXEC)
 * goes to fn, which takes the fd. 0 or -errno. */
int bh_vsock_broker_start(struct bh_vsock_broker *b, struct event_base *base,
			  void (*fn)(void *arg, int fd), void *arg);

/* Stops accepting (between boots); connections wait in the backlog. */
void bh_vsock_broker_stop(struct bh_vsock_broker *b);

/* Connects to <path>_<port>, non-blocking: 0 with *fd (CLOEXEC), or -errno
 * (-ENOENT: nobody there, -ECONNREFUSED: not listening, -EAGAIN: its
 * backlog is full). */
int bh_vsock_broker_connect(struct bh_vsock_broker *b, uint32_t port, int *fd);

/* Stops, closes and unlinks the socket file it created (if it is still
 * the one it made). b may be NULL. */
void bh_vsock_broker_close(struct bh_vsock_broker *b);

#endif
