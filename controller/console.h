/* The guest's serial console on the host side: terminal, file or nothing. */
#ifndef BH_CONTROLLER_CONSOLE_H
#define BH_CONTROLLER_CONSOLE_H

#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "config.h"

struct bh_console {
	enum bh_serial_mode mode;
	int out_fd; /* -1 when output is discarded */
	int out_owned;
	int in_fd; /* stdin for BH_SERIAL_TTY, else -1 */
	/* stdin when the serial port or the virtio console (whose worker
	 * reads it) is on the terminal, else -1 */
	int tty_fd;
	int raw; /* the terminal was switched to raw mode */
	struct termios saved;
};

/*
 * Opens the console for cfg: for "file=" creates/truncates the file (an
 * error names it: the caller exits before anything starts). Does not touch
 * the terminal yet. 0 or -errno with err filled.
 */
int bh_console_open(struct bh_console *c, const struct bh_config *cfg,
		    char *err, size_t errlen);
/* Puts an interactive stdin in raw mode (every key goes to the guest). */
int bh_console_start(struct bh_console *c);
/* Guest output. Short writes and EINTR are retried; errors are logged once. */
void bh_console_write(struct bh_console *c, const uint8_t *data, size_t len);
/* Restores the terminal; safe to call more than once and from atexit. */
void bh_console_restore(struct bh_console *c);
void bh_console_close(struct bh_console *c);

#endif
