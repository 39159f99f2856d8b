/* --user: resolving USER[:GROUP] and becoming that user once the root-only
 * start-up is done. */
#ifndef BH_CONTROLLER_USER_H
#define BH_CONTROLLER_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bh_user {
	uid_t uid;
	gid_t gid;
	/* The passwd entry's name (for initgroups), "" for a numeric uid
	 * without one: then the group alone is kept. */
	char name[256];
	bool group_given; /* USER:GROUP: GROUP alone, no supplementary ones */
};

/*
 * Resolves spec (USER or USER:GROUP, names or numbers; a user name that is
 * all digits is taken as a number) with the system's user database. Without
 * GROUP, the user's primary group. -ENOENT with a message in err for an
 * unknown user or group, or a numeric uid without GROUP and without a passwd
 * entry (no group to take).
 */
int bh_user_resolve(const char *spec, struct bh_user *u, char *err,
		    size_t errlen);

/* Whether the process already runs as u: every uid and gid equal. */
bool bh_user_is_current(const struct bh_user *u);

/*
 * Becomes u for good, as root: the bounding set emptied, then the groups
 * (u's supplementary groups, or GROUP alone), setresgid, setresuid, every
 * capability set cleared (effective, permitted, inheritable, ambient),
 * no_new_privs and not dumpable; each step checked. When the process already
 * runs as u, only the last steps. -EPERM with a message in err when not
 * root, other -errno for a failed step (named in err).
 */
int bh_user_switch(const struct bh_user *u, char *err, size_t errlen);

#endif
