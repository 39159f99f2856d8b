/* virtio-console in the controller: the console's file or terminal opened
 * before anything starts (the worker reads and writes it itself), and the
 * terminal's flags given back at the end. */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkhead/virtio.h>

#include "backend.h"
#include "devtype.h"

struct console {
	/* The output (borrowed: the first backend fd), or -1; its flags to
	 * give back on close when its open file description is shared with
	 * others (bh_backend_stdout), or -1. */
	int out;
	int out_shared_flags;
	bool has_input;
	Bh__ConsoleSetup setup;
};

static unsigned int console_count(const struct bh_config *cfg)
{
	return cfg->console != BH_CONSOLE_OFF ? 1 : 0;
}

static const char *console_id(const struct bh_config *cfg, unsigned int i)
{
	return BH_CONFIG_CONSOLE_ID;
}

/* The output is handed to the worker non-blocking: it writes guest output
 * without ever waiting (bulkhead/outbuf.h). */
static int console_open(struct bh_dev *v, const struct bh_config *cfg,
			unsigned int i, char *err, size_t errlen)
{
	struct console *c = bh_dev_priv(v);
	struct stat st;
	int out, in, r;

	c->out = -1;
	c->out_shared_flags = -1;
	if (cfg->console == BH_CONSOLE_FILE) {
		out = bh_backend_open("--console", cfg->console_path, NULL,
				      O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
				      BH_BACKEND_REG | BH_BACKEND_CHR, true,
				      &st, err, errlen);
		if (out < 0)
			return out;
		r = bh_dev_add_backend(v, out);
		if (r == 0)
			c->out = out;
		return r;
	}
	/* tty: the worker reads and writes the terminal itself, so that
	 * console bytes never pass through the controller. */
	out = bh_backend_stdout("--console tty", &c->out_shared_flags, err,
				errlen);
	if (out < 0)
		return out;
	r = bh_dev_add_backend(v, out);
	if (r < 0)
		return r;
	c->out = out;
	r = fcntl(STDIN_FILENO, F_GETFL);
	if (r >= 0 && (r & O_ACCMODE) != O_WRONLY) {
		in = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
		if (in >= 0 && bh_dev_add_backend(v, in) == 0)
			c->has_input = true;
	}
	return 0;
}

static void console_setup(struct bh_dev *v, const struct bh_config *cfg,
			  Bh__WorkerSetup *s)
{
	struct console *c = bh_dev_priv(v);

	bh__console_setup__init(&c->setup);
	c->setup.has_input = c->has_input;
	if (cfg->console == BH_CONSOLE_FILE) {
		c->setup.max_size = cfg->console_max_size;
		c->setup.stop_when_full =
		    cfg->console_on_full == BH_OUT_FULL_STOP;
	}
	s->console = &c->setup;
}

static void console_close(struct bh_dev *v)
{
	struct console *c = bh_dev_priv(v);

	if (c->out_shared_flags >= 0 && c->out >= 0)
		fcntl(c->out, F_SETFL, c->out_shared_flags);
}

const struct bh_dev_type bh_dev_console = {
	.name = "console",
	.api_type = "virtio-console",
	.virtio_id = BH_VIRTIO_ID_CONSOLE,
	.backend = BH__WORKER_SETUP__BACKEND_CONSOLE,
	.launch = BH_LAUNCH_CONSOLE,
	.priv_size = sizeof(struct console),
	.count = console_count,
	.id = console_id,
	.open = console_open,
	.setup = console_setup,
	.close = console_close,
};
