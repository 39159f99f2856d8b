/* The guest's serial console on the host side: terminal, file or nothing. */
#ifndef BH_CONTROLLER_CONSOLE_H
#define BH_CONTROLLER_CONSOLE_H

#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include <event2/event.h>

#include <bulkhead/outbuf.h>

#include "config.h"

struct bh_console {
	enum bh_serial_mode mode;
	int out_fd; /* -1 when output is discarded; always ours to close */
	/* the flags of a description shared with others (a stdout that
	 * could not be reopened), to give back on close; else -1 */
	int out_shared_flags;
	struct bh_outbuf out; /* guest output, never written blocking */
	struct event *out_ev; /* waits for out_fd while output is queued */
	int in_fd;	      /* stdin for BH_SERIAL_TTY, else -1 */
	/* stdin when the serial port or the virtio console (whose worker
	 * reads it) is on the terminal, else -1 */
	int tty_fd;
	int raw; /* the terminal was switched to raw mode */
	struct termios saved;
};

/*
 * Opens the console for cfg: for "file=" creates/truncates the file (an
 * error names it: the caller exits before anything starts), refusing what
 * is not a regular file or a character device without waiting on it; for
 * "tty" takes a non-blocking stdout of its own. Does not touch the terminal
 * yet. 0 or -errno with err filled.
 */
int bh_console_open(struct bh_console *c, const struct bh_config *cfg,
		    char *err, size_t errlen);
/* Puts an interactive stdin in raw mode (every key goes to the guest), and
 * lets output that the terminal or pipe did not take wait in base. */
int bh_console_start(struct bh_console *c, struct event_base *base);
/* Guest output. Never blocks: what the output does not take now is queued
 * up to BH_OUT_BUF_SIZE, then dropped and counted (a rate-limited warning
 * says so); a file output keeps to its max_size. */
void bh_console_write(struct bh_console *c, const uint8_t *data, size_t len);
/* Bytes the serial output took, and dropped; 0 or -ENOENT without one. */
int bh_console_counters(const struct bh_console *c, uint64_t *written,
			uint64_t *dropped, uint64_t *truncations);
/* Leaves the event loop (a last non-blocking flush first): before the
 * event base goes. Safe to call more than once. */
void bh_console_stop(struct bh_console *c);
/* Restores the terminal; safe to call more than once and from atexit. */
void bh_console_restore(struct bh_console *c);
void bh_console_close(struct bh_console *c);

#endif
