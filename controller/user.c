/* --user: who the controller becomes after its root-only start-up. The
 * steps follow the order that leaves no way back: bounding set, groups,
 * gid, uid, then the capability sets, no_new_privs and not dumpable. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <cap-ng.h>

#include <bulkhead/sandbox.h>
#include <bulkhead/util.h>

#include "user.h"

/* A decimal id below (uid_t)-1, which means "no change" to the kernel. */
static bool parse_id(const char *s, unsigned int *out)
{
	char *end;
	unsigned long v;

	if (!s[0] || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= 0xffffffffUL)
		return false;
	*out = (unsigned int)v;
	return true;
}

/* Writes the message and returns ret. */
static int __attribute__((format(printf, 4, 5)))
fail(int ret, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

int bh_user_resolve(const char *spec, struct bh_user *u, char *err,
		    size_t errlen)
{
	char user[256], *group = NULL;
	struct passwd *pw;
	unsigned int id;

	memset(u, 0, sizeof(*u));
	if (snprintf(user, sizeof(user), "%s", spec) >= (int)sizeof(user))
		return bh_errf(err, errlen, "--user: '%s' is too long", spec);
	group = strchr(user, ':');
	if (group)
		*group++ = '\0';
	if (!user[0] || (group && !group[0]))
		return bh_errf(err, errlen,
			       "--user: '%s' is not USER or USER:GROUP", spec);

	if (parse_id(user, &id)) {
		u->uid = id;
		pw = getpwuid(id);
	} else {
		pw = getpwnam(user);
		if (!pw)
			return fail(-ENOENT, err, errlen,
				    "--user: no user '%s'", user);
		u->uid = pw->pw_uid;
	}
	if (pw)
		snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);

	if (group) {
		u->group_given = true;
		if (parse_id(group, &id)) {
			u->gid = id;
		} else {
			struct group *gr = getgrnam(group);

			if (!gr)
				return fail(-ENOENT, err, errlen,
					    "--user: no group '%s'", group);
			u->gid = gr->gr_gid;
		}
	} else if (pw) {
		u->gid = pw->pw_gid;
	} else {
		return fail(-ENOENT, err, errlen,
			    "--user: uid %u has no passwd entry: give its "
			    "group too (%u:GROUP)",
			    u->uid, u->uid);
	}
	return 0;
}

bool bh_user_is_current(const struct bh_user *u)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return false;
	return r == u->uid && e == u->uid && s == u->uid && rg == u->gid &&
	       eg == u->gid && sg == u->gid;
}

static int set_groups(const struct bh_user *u)
{
	if (!u->group_given && u->name[0])
		return initgroups(u->name, u->gid) < 0 ? -errno : 0;
	return setgroups(1, &u->gid) < 0 ? -errno : 0;
}

int bh_user_switch(const struct bh_user *u, char *err, size_t errlen)
{
	int ret;

	if (!bh_user_is_current(u)) {
		if (geteuid() != 0)
			return fail(-EPERM, err, errlen,
				    "--user: only root can become another "
				    "user (this is uid %u, asked for %u:%u)",
				    (unsigned int)geteuid(), u->uid, u->gid);
		/* While CAP_SETPCAP is still there. */
		if (capng_get_caps_process() < 0)
			return fail(-EIO, err, errlen,
				    "--user: cannot read the capabilities");
		capng_clear(CAPNG_SELECT_BOUNDS);
		if (capng_apply(CAPNG_SELECT_BOUNDS) < 0)
			return fail(-EPERM, err, errlen,
				    "--user: cannot empty the capability "
				    "bounding set");
		ret = set_groups(u);
		if (ret < 0)
			return fail(ret, err, errlen,
				    "--user: cannot set the groups of %u: %s",
				    u->uid, strerror(-ret));
		if (setresgid(u->gid, u->gid, u->gid) < 0)
			return fail(-errno, err, errlen,
				    "--user: setresgid(%u): %s", u->gid,
				    strerror(errno));
		if (setresuid(u->uid, u->uid, u->uid) < 0)
			return fail(-errno, err, errlen,
				    "--user: setresuid(%u): %s", u->uid,
				    strerror(errno));
		if (!bh_user_is_current(u))
			return fail(-EPERM, err, errlen,
				    "--user: the ids did not change to %u:%u",
				    u->uid, u->gid);
		/* Root must be out of reach for good. */
		if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
			return fail(-EPERM, err, errlen,
				    "--user: could become root again");
	}
	ret = bh_sandbox_drop_caps();
	if (ret < 0)
		return fail(ret, err, errlen,
			    "--user: cannot drop the capabilities: %s",
			    strerror(-ret));
	ret = bh_sandbox_no_new_privs();
	if (ret < 0)
		return fail(ret, err, errlen,
			    "--user: no_new_privs or not dumpable: %s",
			    strerror(-ret));
	return 0;
}
