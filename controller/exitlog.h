/* The VM-exit counts the runner reports at the end of a boot (--exit-stats),
 * as the lines the controller prints on stderr. */
#ifndef BH_CONTROLLER_EXITLOG_H
#define BH_CONTROLLER_EXITLOG_H

#include <stddef.h>
#include <stdint.h>

#include "proto/internal.pb-c.h"

/* The longest line, its newline included. */
#define BH_EXITLOG_LINE_MAX 159

/*
 * Formats one counter ("      1234  io-out 0x3f8\n") into line (size bytes,
 * at least 2): what is the runner's text, so it is cut to fit and its bytes
 * outside printable ASCII become '?'. The line always ends in a newline.
 * Returns the bytes stored, the newline included and the NUL not.
 */
size_t bh_exitlog_line(char *line, size_t size, uint64_t count,
		       const char *what);

/* Writes the total of boot and one line per counter of s to fd: 0, or the
 * -errno of the first write that failed. */
int bh_exitlog_write(int fd, const Bh__ExitStats *s, unsigned int boot);

#endif
