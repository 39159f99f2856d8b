/* The steps every child takes before it serves requests, in this order:
 * capabilities, no_new_privs, (namespaces), seccomp. */
#ifndef BULKHEAD_SANDBOX_H
#define BULKHEAD_SANDBOX_H

#include <seccomp.h>

/* Empties every capability set: effective, permitted, inheritable, bounding
 * and ambient (libcap-ng). 0 or -errno; also 0 when there was nothing to
 * drop. */
int bh_sandbox_drop_caps(void);

/* prctl(PR_SET_NO_NEW_PRIVS) and PR_SET_DUMPABLE 0. 0 or -errno. */
int bh_sandbox_no_new_privs(void);

/*
 * Adds unconditional allow rules for each syscall name in the NULL-terminated
 * list. 0 or -errno (-EINVAL names the unknown syscall in the log).
 */
int bh_seccomp_allow_list(scmp_filter_ctx ctx, const char *const *names);

#endif
