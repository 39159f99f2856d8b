/* Backend files opened so that no path can stall the controller's event
 * loop: non-blocking open, type check, then the flags the user needs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

static const char *type_name(mode_t m)
{
	if (S_ISREG(m))
		return "a regular file";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	return "of an unknown type";
}

static bool type_ok(mode_t m, unsigned int types)
{
	return ((types & BH_BACKEND_REG) && S_ISREG(m)) ||
	       ((types & BH_BACKEND_BLK) && S_ISBLK(m)) ||
	       ((types & BH_BACKEND_CHR) && S_ISCHR(m));
}

static void types_wanted(unsigned int types, char *out, size_t len)
{
	static const struct {
		unsigned int bit;
		const char *name;
	} names[] = {
		{ BH_BACKEND_REG, "a regular file" },
		{ BH_BACKEND_BLK, "a block device" },
		{ BH_BACKEND_CHR, "a character device" },
	};
	size_t used = 0;
	unsigned int n = 0, total = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		total += (types & names[i].bit) ? 1 : 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int r;

		if (!(types & names[i].bit))
			continue;
		n++;
		r = snprintf(out + used, len - used, "%s%s",
			     n == 1 ? "" : (n == total ? " or " : ", "),
			     names[i].name);
		if (r < 0 || (size_t)r >= len - used)
			break;
		used += (size_t)r;
	}
}

static int wrong_type(const char *opt, const char *path, mode_t m,
		      unsigned int types, char *err, size_t errlen)
{
	char want[96];

	types_wanted(types, want, sizeof(want));
	snprintf(err, errlen, "%s: '%s' is %s; it must be %s", opt, path,
		 type_name(m), want);
	return S_ISDIR(m) ? -EISDIR : -EINVAL;
}

int bh_backend_open(const char *opt, const char *path, const char *how,
		    int flags, unsigned int types, bool keep_nonblock,
		    struct stat *st, char *err, size_t errlen)
{
	int fd, fl, r;

	fd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0) {
		r = -errno;
		/* A FIFO opened to write without a reader fails with ENXIO,
		 * which would read as "no such device": say what it is. */
		if ((r == -ENXIO || r == -EISDIR) && stat(path, st) == 0 &&
		    !type_ok(st->st_mode, types))
			return wrong_type(opt, path, st->st_mode, types, err,
					  errlen);
		snprintf(err, errlen, "%s: cannot open '%s'%s: %s", opt, path,
			 how ? how : "", strerror(-r));
		return r;
	}
	if (fstat(fd, st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot stat '%s': %s", opt, path,
			 strerror(-r));
		goto fail;
	}
	if (!type_ok(st->st_mode, types)) {
		r = wrong_type(opt, path, st->st_mode, types, err, errlen);
		goto fail;
	}
	if (!keep_nonblock) {
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			r = -errno;
			snprintf(err, errlen, "%s: '%s': %s", opt, path,
				 strerror(-r));
			goto fail;
		}
	}
	return fd;
fail:
	close(fd);
	return r;
}

int bh_backend_stdout(const char *opt, int *shared_flags, char *err,
		      size_t errlen)
{
	struct stat st;
	int fd, r;

	*shared_flags = -1;
	if (fstat(STDOUT_FILENO, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: no standard output: %s", opt,
			 strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		/* A new description of the same terminal or pipe; O_NONBLOCK
		 * here also keeps a FIFO-like open from waiting. */
		fd = open("/proc/self/fd/1",
			  O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0)
			return fd;
	}
	fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: no standard output: %s", opt,
			 strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode))
		*shared_flags = fcntl(fd, F_GETFL);
	return fd;
}
