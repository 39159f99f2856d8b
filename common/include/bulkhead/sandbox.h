/* The steps every child takes before it serves requests, in this order:
 * capabilities, no_new_privs, (namespaces), seccomp. */
#ifndef BULKHEAD_SANDBOX_H
#define BULKHEAD_SANDBOX_H

#include <signal.h>
#include <stdio.h>

#include <seccomp.h>
#include <stdint.h>

/*
 * The signal with which the vCPU runner kicks its vCPU threads out of
 * KVM_RUN. The runner's allow-list lets it send this signal (and SIGABRT,
 * for abort()) to its own threads only; the controller's list, on which the
 * runner's stacks, must let it through as well.
 */
#define BH_RUNNER_KICK_SIGNAL SIGUSR1

/* Empties every capability set: effective, permitted, inheritable, bounding
 * and ambient (libcap-ng). 0 or -errno; also 0 when there was nothing to
 * drop. */
int bh_sandbox_drop_caps(void);

/* prctl(PR_SET_NO_NEW_PRIVS) and PR_SET_DUMPABLE 0. 0 or -errno. */
int bh_sandbox_no_new_privs(void);

/*
 * No core files (RLIMIT_CORE 0) and no more descriptors than the process
 * holds now plus more_fds (RLIMIT_NOFILE, soft and hard). Call before the
 * root goes away: it lists /proc/self/fd. 0 or -errno.
 */
int bh_sandbox_limits(unsigned int more_fds);

/*
 * Landlock with every file-system right handled and none granted (and, where
 * the kernel knows them, no TCP bind/connect, no abstract unix sockets or
 * signals outside the process): no path can be opened, created or changed
 * any more, whatever the seccomp filter allows. Needs no_new_privs. Returns
 * the Landlock ABI version applied (>= 1), or -EOPNOTSUPP where the kernel
 * has no Landlock (or it is disabled), or another -errno.
 */
int bh_sandbox_landlock(void);

/*
 * --print-policy: writes an allow-list to out, one rule per line: the
 * system calls of the NULL-terminated name lists (sorted, each once), then
 * mmap and mprotect as bh_seccomp_new allows them (in sanitizer builds
 * also its rules for the runtime, each marked "(sanitizer builds only)"),
 * then the lines of extra (NULL-terminated, one system call each, e.g. an
 * ioctl with the requests it may carry), then the count. Returns the count.
 */
unsigned int bh_policy_print(FILE *out, const char *const *const *lists,
			     unsigned int nlists, const char *const *extra);

/* The first part of bh_policy_print, for a process whose other rules differ:
 * the names of the lists, sorted, each once. Returns how many. */
unsigned int bh_policy_print_names(FILE *out, const char *const *const *lists,
				   unsigned int nlists);

/*
 * Adds unconditional allow rules for each syscall name in the NULL-terminated
 * list. 0 or -errno (-EINVAL names the unknown syscall in the log).
 */
int bh_seccomp_allow_list(scmp_filter_ctx ctx, const char *const *names);

/*
 * A new filter as every Bulkhead process wants it: kill the process on any
 * syscall not allowed, apply to every thread (TSYNC), and allow mmap and
 * mprotect only without PROT_EXEC; in sanitizer builds
 * (BULKHEAD_SANITIZER_BUILD) also sigaltstack, and open and readlink failing
 * with EACCES, for the ASan/UBSan runtime (common/sandbox.c says why); the
 * caller's own list must not name these. The caller adds its own rules, then
 * seccomp_load()s and seccomp_release()s it. 0 or -errno.
 */
int bh_seccomp_new(scmp_filter_ctx *out);

/* Allows syscall nr when (argument arg & mask) == value. 0 or -errno. */
int bh_seccomp_allow_masked(scmp_filter_ctx ctx, int nr, unsigned int arg,
			    uint64_t mask, uint64_t value);

#endif
