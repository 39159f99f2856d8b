/* console/console: the virtio-console device worker, one port between the
 * guest and an output fd (and an optional input fd), without MULTIPORT. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/virtio_console.h>

#include <bulkhead/log.h>
#include <bulkhead/outbuf.h>
#include <bulkhead/util.h>
#include <bulkhead/virtio.h>

#include "worker.h"

#define CON_RXQ	       0
#define CON_TXQ	       1
#define CON_QUEUE_SIZE 256
/* Receive buffers filled per fd_ready, so that control messages are not
 * starved by a fast input; the fd stays readable and is polled again. */
#define CON_RX_BURST 64

struct con {
	int out_fd;
	int in_fd;	 /* -1 without input */
	bool input_open; /* in_fd has not reached end of file or failed */
	bool rx_starved; /* input waits for the guest to post buffers */
	bool rx_held;	 /* rx_req is popped and not yet answered */
	/* Guest output: never waited for (a full pipe, a suspended terminal
	 * must not stall the queues or the control socket), and a regular
	 * file kept to its max_size. */
	struct bh_outbuf out;
	struct bh_vq_req rx_req;
	struct bh_vq_req tx_req;
};

/* ftruncate: on_full=truncate empties a full output file (O_APPEND, so no
 * seek is needed to write from its start again). */
static const char *const con_syscalls[] = {
	"read", "readv", "write", "writev", "poll", "ppoll", "ftruncate", NULL,
};

/* Waits for fd to be ready for events; 1 ready, 0 timeout, -errno. */
static int con_wait(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r > 0;
}

static void con_tx(struct bh_worker *w, struct con *c)
{
	struct bh_vq *vq = &w->vq[CON_TXQ];
	unsigned int done = 0;

	while (!w->needs_reset) {
		struct bh_vq_req *r = &c->tx_req;
		uint64_t bytes = 0, dropped = 0;
		int ret = bh_vq_pop(vq, r);

		if (ret == 0)
			break;
		if (ret < 0) {
			bh_worker_needs_reset(w, "transmitq: %s", vq->why);
			break;
		}
		/* Writable parts of a transmit buffer (a driver bug) are
		 * ignored: nothing is written back. The buffer goes back to
		 * the guest at once, whether its bytes were written, queued
		 * or dropped. */
		for (unsigned int i = 0; i < r->n_out; i++) {
			bytes += r->iov[i].iov_len;
			dropped += bh_outbuf_write(&c->out, r->iov[i].iov_base,
						   r->iov[i].iov_len);
		}
		bh_worker_count(w, "tx_bytes", bytes);
		if (dropped)
			bh_worker_count(w, "tx_dropped", dropped);
		bh_vq_push(vq, r->head, 0);
		if (++done % vq->size == 0)
			bh_vq_notify(vq);
	}
	bh_vq_notify(vq);
}

/*
 * Moves input into receive buffers while both are there. A buffer is popped
 * before reading so that no byte is read without a place to put it; if the
 * input turns out to have nothing, the buffer is held for next time.
 */
static void con_rx(struct bh_worker *w, struct con *c)
{
	struct bh_vq *vq = &w->vq[CON_RXQ];
	struct bh_vq_req *r = &c->rx_req;
	bool pushed = false;

	for (unsigned int i = 0; i < CON_RX_BURST; i++) {
		ssize_t n;
		int ret;

		if (!w->active || w->needs_reset || !c->input_open)
			break;
		/* The fd may be blocking (a terminal): read only when ready. */
		ret = con_wait(c->in_fd, POLLIN, 0);
		if (ret < 0) {
			bh_warn("console input: %s", strerror(-ret));
			c->input_open = false;
		}
		if (ret <= 0)
			break;
		if (!c->rx_held) {
			ret = bh_vq_pop(vq, r);
			if (ret == 0) {
				c->rx_starved = true;
				break;
			}
			if (ret < 0) {
				bh_worker_needs_reset(w, "receiveq: %s",
						      vq->why);
				break;
			}
			c->rx_held = true;
		}
		/* A buffer with no writable part (guest-controlled) cannot
		 * take input: hand it back empty. */
		if (r->n_in == 0) {
			bh_vq_push(vq, r->head, 0);
			c->rx_held = false;
			pushed = true;
			continue;
		}
		n = readv(c->in_fd, &r->iov[r->n_out],
			  r->n_in > IOV_MAX ? IOV_MAX : (int)r->n_in);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			break;
		if (n <= 0) {
			if (n < 0)
				bh_warn("console input: %s", strerror(errno));
			else
				bh_info("console input closed");
			c->input_open = false;
			break;
		}
		/* n <= r->in_len, which the used ring's 32 bits hold for any
		 * single readv (at most SSIZE_MAX, clamped by the kernel to
		 * 2 GiB). */
		bh_vq_push(vq, r->head, (uint32_t)n);
		c->rx_held = false;
		pushed = true;
		bh_worker_count(w, "rx_bytes", (uint64_t)n);
	}
	if (pushed)
		bh_vq_notify(vq);
}

static void con_queue_notify(struct bh_worker *w, unsigned int q)
{
	struct con *c = w->dev;

	if (q == CON_TXQ) {
		con_tx(w, c);
	} else if (q == CON_RXQ) {
		/* New buffers: input may flow again. */
		c->rx_starved = false;
		if (c->in_fd >= 0)
			con_rx(w, c);
	}
}

/* Output that the fd did not take waits for it to become writable. */
static unsigned int con_poll_out_fds(struct bh_worker *w, int *fds,
				     unsigned int max)
{
	struct con *c = w->dev;

	if (max < 1 || !bh_outbuf_pending(&c->out))
		return 0;
	fds[0] = c->out.fd;
	return 1;
}

static unsigned int con_poll_fds(struct bh_worker *w, int *fds,
				 unsigned int max)
{
	struct con *c = w->dev;

	/* Unread input stays in the fd (not dropped) until the guest has
	 * somewhere to put it. */
	if (max < 1 || c->in_fd < 0 || !c->input_open || c->rx_starved ||
	    !w->active || w->needs_reset)
		return 0;
	fds[0] = c->in_fd;
	return 1;
}

static void con_fd_ready(struct bh_worker *w, int fd)
{
	struct con *c = w->dev;

	if (fd == c->in_fd)
		con_rx(w, c);
	else if (fd == c->out_fd)
		bh_outbuf_flush(&c->out);
}

static int con_activate(struct bh_worker *w)
{
	struct con *c = w->dev;

	if (w->nq < 2) {
		bh_err("console needs both queues, driver enabled %u", w->nq);
		return -EINVAL;
	}
	c->rx_starved = false;
	c->rx_held = false;
	return 0;
}

static void con_reset(struct bh_worker *w)
{
	struct con *c = w->dev;

	/* A held receive buffer belongs to the old queue: forget it. */
	c->rx_held = false;
	c->rx_starved = false;
}

static int con_setup(struct bh_worker *w, const Bh__WorkerSetup *s,
		     struct bh_frame *f)
{
	const Bh__ConsoleSetup *cs = s->console;
	struct virtio_console_config cfg;
	struct con *c;
	int flags, ret;

	if (!cs || f->nfds != (cs->has_input ? 3u : 2u)) {
		bh_err("console setup: %u fds for has_input=%d", f->nfds,
		       cs ? cs->has_input : 0);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->out_fd = -1;
	c->in_fd = -1;

	c->out_fd = bh_frame_take_fd(f, 1);
	if (c->out_fd < 0) {
		ret = c->out_fd;
		goto err_free;
	}
	flags = fcntl(c->out_fd, F_GETFL);
	if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY) {
		bh_err("console output fd is not writable");
		ret = -EBADF;
		goto err_close;
	}
	if (cs->has_input) {
		c->in_fd = bh_frame_take_fd(f, 2);
		if (c->in_fd < 0) {
			ret = c->in_fd;
			goto err_close;
		}
		flags = fcntl(c->in_fd, F_GETFL);
		if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY) {
			bh_err("console input fd is not readable");
			ret = -EBADF;
			goto err_close;
		}
		c->input_open = true;
	}
	/* A reader that goes away must end the output, not the worker. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		ret = -errno;
		goto err_close;
	}
	/* Before the sandbox: it needs fstat and fcntl. */
	ret = bh_outbuf_init(&c->out, "console", c->out_fd, cs->max_size,
			     cs->stop_when_full ? BH_OUT_FULL_STOP
						: BH_OUT_FULL_TRUNCATE);
	if (ret < 0) {
		bh_err("console output: %s", strerror(-ret));
		goto err_close;
	}

	memset(&cfg, 0, sizeof(cfg));
	memcpy(w->config, &cfg, sizeof(cfg));
	w->config_len = sizeof(cfg);
	w->device_features = 0;
	w->num_queues = 2;
	w->max_queue_size = CON_QUEUE_SIZE;
	w->dev = c;
	bh_worker_count(w, "rx_bytes", 0);
	bh_worker_count(w, "tx_bytes", 0);
	bh_worker_count(w, "tx_dropped", 0);
	return 0;

err_close:
	bh_closep(&c->in_fd);
	bh_closep(&c->out_fd);
err_free:
	free(c);
	return ret;
}

static const struct bh_device_ops con_ops = {
	.name = "console",
	.device_type = BH_VIRTIO_ID_CONSOLE,
	.backend = BH__WORKER_SETUP__BACKEND_CONSOLE,
	.setup = con_setup,
	.activate = con_activate,
	.queue_notify = con_queue_notify,
	.reset = con_reset,
	.poll_fds = con_poll_fds,
	.poll_out_fds = con_poll_out_fds,
	.fd_ready = con_fd_ready,
	.extra_syscalls = con_syscalls,
};

int main(int argc, char **argv)
{
	return bh_worker_main(argc, argv, &con_ops);
}
