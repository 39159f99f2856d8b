/* Naming the system call that got a child killed by its seccomp filter,
 * from the kernel's audit record (type=1326) in /dev/kmsg. */
#ifndef BH_CONTROLLER_KMSG_H
#define BH_CONTROLLER_KMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How long a report waits for the record, which the kernel may write a
 * moment after the child died; the event loop stands still meanwhile. */
#define BH_KMSG_WAIT_MS 100

/*
 * One line of the kernel log: a /dev/kmsg record ("6,123,456,-;audit: ..."),
 * a dmesg line ("[  12.3] audit: ...") or the message alone, with or without
 * the "audit(...):" stamp. When it is a seccomp audit record (type=1326, or
 * auditd's type=SECCOMP) of a process killed with SIGSYS and its pid= is
 * pid, stores the system call number in *nr and returns true.
 */
bool bh_kmsg_seccomp_match(const char *line, size_t len, pid_t pid, long *nr);

/* The open kernel log, -1 if it could not be opened. */
struct bh_kmsg {
	int fd;
};

/*
 * Opens /dev/kmsg read-only and non-blocking, at its end: only records
 * written from now on are read. Where it is refused (not root,
 * ProtectKernelLogs=), k->fd stays -1 and the reports say where to look.
 * Returns 0 or -errno.
 */
int bh_kmsg_open(struct bh_kmsg *k);
void bh_kmsg_close(struct bh_kmsg *k);

/*
 * Reads the records written since the last read, for at most wait_ms in
 * all, until pid's seccomp record turns up. 1 with *nr set, 0 when it did
 * not come, -errno (-EBADF without /dev/kmsg).
 */
int bh_kmsg_find_seccomp(struct bh_kmsg *k, pid_t pid, int wait_ms, long *nr);

/*
 * When status (from waitpid) says what killed process pid was SIGSYS, logs
 * which system call its seccomp filter refused (what: "vCPU runner",
 * "worker disk0 (blk)"), or where to find it when the kernel log gave no
 * answer, and returns true; otherwise logs nothing and returns false. k may
 * be NULL.
 */
bool bh_kmsg_report_sigsys(struct bh_kmsg *k, pid_t pid, int status,
			   const char *what);

#endif
