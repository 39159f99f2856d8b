/* Host side of the guest's serial console: where its bytes go and come
 * from, and the terminal mode that makes it interactive. */
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
	struct stat st;

	memset(c, 0, sizeof(*c));
	c->mode = cfg->serial;
	c->out_fd = -1;
	c->in_fd = -1;
	c->tty_fd = -1;
	if (cfg->console == BH_CONSOLE_TTY && fcntl(STDIN_FILENO, F_GETFD) >= 0)
		c->tty_fd = STDIN_FILENO;
	switch (cfg->serial) {
	case BH_SERIAL_TTY:
		c->out_fd = STDOUT_FILENO;
		c->in_fd = STDIN_FILENO;
		/* A closed stdin (e.g. under a supervisor) means no input. */
		if (fcntl(STDIN_FILENO, F_GETFD) < 0)
			c->in_fd = -1;
		c->tty_fd = c->in_fd;
		break;
	case BH_SERIAL_FILE:
		c->out_fd = bh_backend_open(
		    "--serial", cfg->serial_path, NULL,
		    O_WRONLY | O_CREAT | O_TRUNC,
		    BH_BACKEND_REG | BH_BACKEND_CHR, false, &st, err, errlen);
		if (c->out_fd < 0) {
			int r = c->out_fd;

			c->out_fd = -1;
			return r;
		}
		c->out_owned = 1;
		break;
	case BH_SERIAL_NULL:
	case BH_SERIAL_OFF:
		break;
	}
	return 0;
}

int bh_console_start(struct bh_console *c)
{
	struct termios t;

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
	int r;

	if (c->out_fd < 0)
		return;
	r = bh_write_full(c->out_fd, data, len);
	if (r < 0) {
		bh_warn("console output failed: %s; discarding further output",
			strerror(-r));
		if (c->out_owned)
			bh_closep(&c->out_fd);
		c->out_fd = -1;
	}
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
	if (c->out_owned)
		bh_closep(&c->out_fd);
	c->out_fd = -1;
}
