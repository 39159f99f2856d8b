/* The seccomp audit records of the kernel log: which system call killed a
 * child. The filters kill the process (no SIGSYS handler can log it), so the
 * kernel's own record is the only witness. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bulkhead/log.h>

#include "kmsg.h"

#define AUDIT_SECCOMP 1326

/* The value of the space-separated field key= in [s, end), or NULL. */
static const char *field(const char *s, const char *end, const char *key,
			 size_t *vlen)
{
	size_t klen = strlen(key);

	while (s < end) {
		const char *w = s, *sp;

		while (w < end && *w != ' ')
			w++;
		sp = w;
		if ((size_t)(sp - s) > klen && memcmp(s, key, klen) == 0 &&
		    s[klen] == '=') {
			*vlen = (size_t)(sp - s) - klen - 1;
			return s + klen + 1;
		}
		s = sp + 1;
	}
	return NULL;
}

/* A decimal (base 10) or hex (base 16) number that fills [v, v+len). */
static bool number(const char *v, size_t len, int base, long *out)
{
	char buf[32], *endp;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, v, len);
	buf[len] = '\0';
	if (buf[0] == '-' || buf[0] == '+')
		return false;
	errno = 0;
	*out = strtol(buf, &endp, base);
	return errno == 0 && *endp == '\0';
}

bool bh_kmsg_seccomp_match(const char *line, size_t len, pid_t pid, long *nr)
{
	const char *end = line + len, *p, *v;
	size_t vlen;
	long n, sig;

	/* A /dev/kmsg record: "prio,seq,usec,flags[,...];message", then
	 * maybe continuation lines (" KEY=value") after a newline. */
	p = memchr(line, '\n', len);
	if (p)
		end = p;
	p = memchr(line, ';', (size_t)(end - line));
	if (p && memchr(line, ' ', (size_t)(p - line)) == NULL)
		line = p + 1;
	v = field(line, end, "type", &vlen);
	if (!v || !((vlen == 4 && memcmp(v, "1326", 4) == 0) ||
		    (vlen == 7 && memcmp(v, "SECCOMP", 7) == 0)))
		return false;
	v = field(line, end, "pid", &vlen);
	if (!v || !number(v, vlen, 10, &n) || n != (long)pid)
		return false;
	/* A filter's SECCOMP_RET_LOG leaves the same record with sig=0. */
	v = field(line, end, "sig", &vlen);
	if (!v || !number(v, vlen, 10, &sig) || sig != SIGSYS)
		return false;
	v = field(line, end, "syscall", &vlen);
	if (!v || !number(v, vlen, 10, &n))
		return false;
	*nr = n;
	return true;
}

int bh_kmsg_open(struct bh_kmsg *k)
{
	k->fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (k->fd < 0)
		return -errno;
	if (lseek(k->fd, 0, SEEK_END) < 0) {
		int r = -errno;

		bh_kmsg_close(k);
		return r;
	}
	return 0;
}

void bh_kmsg_close(struct bh_kmsg *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bh_kmsg_find_seccomp(struct bh_kmsg *k, pid_t pid, int wait_ms, long *nr)
{
	long deadline = now_ms() + wait_ms;
	/* A record is at most 8 KiB (CONSOLE_EXT_LOG_MAX); a smaller buffer
	 * would get EINVAL, and the record would stay unread. */
	char rec[8192];

	if (!k || k->fd < 0)
		return -EBADF;
	for (;;) {
		ssize_t n = read(k->fd, rec, sizeof(rec));
		struct pollfd pfd = { .fd = k->fd, .events = POLLIN };
		long left;

		if (n > 0) {
			if (bh_kmsg_seccomp_match(rec, (size_t)n, pid, nr))
				return 1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* Records overwritten before we read them: go on with the
		 * oldest still there. */
		if (n < 0 && errno == EPIPE)
			continue;
		if (n == 0 || errno != EAGAIN)
			return n == 0 ? 0 : -errno;
		left = deadline - now_ms();
		if (left <= 0)
			return 0;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
	}
}

bool bh_kmsg_report_sigsys(struct bh_kmsg *k, pid_t pid, int status,
			   const char *what)
{
	long nr;
	int r;

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
		return false;
	r = bh_kmsg_find_seccomp(k, pid, BH_KMSG_WAIT_MS, &nr);
	if (r == 1) {
		char *name =
		    seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)nr);

		bh_err("%s killed by its seccomp filter for syscall %s (%ld)",
		       what, name ? name : "unknown", nr);
		free(name);
	} else {
		bh_err("%s killed by its seccomp filter (SIGSYS); the kernel "
		       "log's audit record type=1326 for pid %d names the "
		       "syscall%s",
		       what, (int)pid,
		       r == -EBADF ? " (/dev/kmsg could not be read here)"
				   : "");
	}
	return true;
}
