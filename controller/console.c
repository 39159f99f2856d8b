/* Host side of the guest's serial console: where its bytes go and come
 * from, and the terminal mode that makes it interactive. The guest decides
 * how much it prints, so output is written without ever blocking the event
 * loop (see bulkhead/outbuf.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "backend.h"
#include "console.h"

int bh_console_open(struct bh_console *c, const struct bh_config *cfg,
		    char *err, size_t errlen)
{
	uint64_t max_size = 0;
	struct stat st;
	int r;

	memset(c, 0, sizeof(*c));
	c->mode = cfg->serial;
	c->out_fd = -1;
	c->out_shared_flags = -1;
	c->in_fd = -1;
	c->tty_fd = -1;
	if (cfg->console == BH_CONSOLE_TTY && fcntl(STDIN_FILENO, F_GETFD) >= 0)
		c->tty_fd = STDIN_FILENO;
	switch (cfg->serial) {
	case BH_SERIAL_TTY:
		c->out_fd = bh_backend_stdout(
		    "--serial tty", &c->out_shared_flags, err, errlen);
		if (c->out_fd < 0) {
			r = c->out_fd;
			c->out_fd = -1;
			return r;
		}
		c->in_fd = STDIN_FILENO;
		/* A closed stdin (e.g. under a supervisor) means no input. */
		if (fcntl(STDIN_FILENO, F_GETFD) < 0)
			c->in_fd = -1;
		c->tty_fd = c->in_fd;
		break;
	case BH_SERIAL_FILE:
		c->out_fd = bh_backend_open(
		    "--serial", cfg->serial_path, NULL,
		    O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
		    BH_BACKEND_REG | BH_BACKEND_CHR, true, &st, err, errlen);
		if (c->out_fd < 0) {
			r = c->out_fd;
			c->out_fd = -1;
			return r;
		}
		max_size = cfg->serial_max_size;
		break;
	case BH_SERIAL_NULL:
	case BH_SERIAL_OFF:
		break;
	}
	r = bh_outbuf_init(&c->out, "serial", c->out_fd, max_size,
			   cfg->serial_on_full);
	if (r < 0) {
		snprintf(err, errlen, "--serial: cannot set up the output: %s",
			 strerror(-r));
		bh_console_close(c);
		return r;
	}
	return 0;
}

/* Waits for the output only while something is queued for it. */
static void console_arm(struct bh_console *c)
{
	bool waiting;

	if (!c->out_ev)
		return;
	waiting = event_pending(c->out_ev, EV_WRITE, NULL);
	if (bh_outbuf_pending(&c->out) && !waiting) {
		/* epoll refuses regular files and /dev/null, whose writes
		 * never wait: the next write flushes instead. */
		if (event_add(c->out_ev, NULL) < 0)
			bh_debug("serial output cannot be waited for");
	} else if (!bh_outbuf_pending(&c->out) && waiting) {
		event_del(c->out_ev);
	}
}

static void on_out(evutil_socket_t fd, short what, void *arg)
{
	struct bh_console *c = arg;

	bh_outbuf_flush(&c->out);
	console_arm(c);
}

int bh_console_start(struct bh_console *c, struct event_base *base)
{
	struct termios t;

	if (c->out_fd >= 0 && !c->out_ev) {
		c->out_ev = event_new(base, c->out_fd, EV_WRITE | EV_PERSIST,
				      on_out, c);
		if (!c->out_ev)
			return -ENOMEM;
		console_arm(c);
	}
	if (c->tty_fd < 0 || !isatty(c->tty_fd))
		return 0;
	if (tcgetattr(c->tty_fd, &c->saved) < 0)
		return -errno;
	t = c->saved;
	cfmakeraw(&t);
	/* Keep output post-processing off too: the guest sends CR LF. */
	if (tcsetattr(c->tty_fd, TCSANOW, &t) < 0)
		return -errno;
	c->raw = 1;
	return 0;
}

void bh_console_write(struct bh_console *c, const uint8_t *data, size_t len)
{
	bh_outbuf_write(&c->out, data, len);
	console_arm(c);
}

int bh_console_counters(const struct bh_console *c, uint64_t *written,
			uint64_t *dropped, uint64_t *truncations)
{
	if (!c->out.buf || c->out.fd < 0)
		return -ENOENT;
	*written = c->out.written;
	*dropped = c->out.dropped;
	*truncations = c->out.truncations;
	return 0;
}

void bh_console_stop(struct bh_console *c)
{
	if (!c->out_ev)
		return;
	bh_outbuf_flush(&c->out);
	event_free(c->out_ev);
	c->out_ev = NULL;
}

void bh_console_restore(struct bh_console *c)
{
	if (c->raw) {
		tcsetattr(c->tty_fd, TCSANOW, &c->saved);
		c->raw = 0;
	}
}

void bh_console_close(struct bh_console *c)
{
	bh_console_restore(c);
	bh_console_stop(c);
	bh_outbuf_free(&c->out);
	if (c->out_fd >= 0 && c->out_shared_flags >= 0)
		fcntl(c->out_fd, F_SETFL, c->out_shared_flags);
	c->out_shared_flags = -1;
	bh_closep(&c->out_fd);
}
