/* Opening the host files behind devices and console outputs, without
 * letting a path (a FIFO, a terminal) hold up the controller. */
#ifndef BH_CONTROLLER_BACKEND_H
#define BH_CONTROLLER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* The file types a backend may be (a mask). */
#define BH_BACKEND_REG (1u << 0) /* regular file */
#define BH_BACKEND_BLK (1u << 1) /* block device */
#define BH_BACKEND_CHR (1u << 2) /* character device */

/*
 * Opens path with flags (O_CLOEXEC and O_NOCTTY added) and O_NONBLOCK, so
 * that the open itself never waits (a FIFO waits for its other end), then
 * checks the file's type against types and, unless keep_nonblock, clears
 * O_NONBLOCK again. On success returns the fd and fills *st; on failure
 * -errno with a message in err that begins with opt and names the path (and
 * its type, when that is what is wrong); how, if not NULL, says after the
 * path what the open asked for (" to write").
 */
int bh_backend_open(const char *opt, const char *path, const char *how,
		    int flags, unsigned int types, bool keep_nonblock,
		    struct stat *st, char *err, size_t errlen);

/*
 * Standard output for guest output that is written without blocking: an open
 * file description of our own where one can be had (a terminal or a pipe,
 * reopened through /proc/self/fd/1), so that making it non-blocking does not
 * change it for the shell or other processes that share ours. A regular file
 * is duplicated (writing to it never waits). Where stdout cannot be reopened
 * (a socket such as journald's stream, no /proc) it is duplicated and the
 * caller's O_NONBLOCK reaches the shared description; *shared_flags then
 * holds the flags to give it back on close, else -1. The fd or -errno with
 * a message in err.
 */
int bh_backend_stdout(const char *opt, int *shared_flags, char *err,
		      size_t errlen);

#endif
