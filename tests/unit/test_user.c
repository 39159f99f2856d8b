/* Unit tests for --user's resolution (controller/user.c), against this
 * host's user database: root and nobody exist on every Debian system. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "user.h"

static void test_names_and_ids(void **state)
{
	struct passwd *nobody = getpwnam("nobody");
	struct group *nogroup;
	struct bh_user u;
	char err[256], spec[64];

	(void)state;
	assert_non_null(nobody);
	assert_int_equal(bh_user_resolve("root", &u, err, sizeof(err)), 0);
	assert_int_equal(u.uid, 0);
	assert_int_equal(u.gid, 0);
	assert_string_equal(u.name, "root");
	assert_false(u.group_given);

	assert_int_equal(bh_user_resolve("nobody", &u, err, sizeof(err)), 0);
	assert_int_equal(u.uid, nobody->pw_uid);
	assert_int_equal(u.gid, nobody->pw_gid);
	assert_string_equal(u.name, "nobody");

	/* a number with a passwd entry: its name and primary group */
	snprintf(spec, sizeof(spec), "%u", (unsigned int)nobody->pw_uid);
	assert_int_equal(bh_user_resolve(spec, &u, err, sizeof(err)), 0);
	assert_int_equal(u.uid, nobody->pw_uid);
	assert_int_equal(u.gid, nobody->pw_gid);
	assert_string_equal(u.name, "nobody");

	/* USER:GROUP by name and by number: that group alone */
	nogroup = getgrgid(nobody->pw_gid);
	assert_non_null(nogroup);
	snprintf(spec, sizeof(spec), "nobody:%s", nogroup->gr_name);
	assert_int_equal(bh_user_resolve(spec, &u, err, sizeof(err)), 0);
	assert_int_equal(u.gid, nobody->pw_gid);
	assert_true(u.group_given);
	assert_int_equal(bh_user_resolve("nobody:0", &u, err, sizeof(err)), 0);
	assert_int_equal(u.uid, nobody->pw_uid);
	assert_int_equal(u.gid, 0);
	assert_true(u.group_given);

	/* a uid without a passwd entry works with a group */
	assert_null(getpwuid(4000123));
	assert_int_equal(
	    bh_user_resolve("4000123:4000124", &u, err, sizeof(err)), 0);
	assert_int_equal(u.uid, 4000123);
	assert_int_equal(u.gid, 4000124);
	assert_string_equal(u.name, "");
}

static void test_errors(void **state)
{
	struct bh_user u;
	char err[256];

	(void)state;
	assert_int_equal(
	    bh_user_resolve("no-such-user-bh", &u, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "--user: no user 'no-such-user-bh'");
	assert_int_equal(
	    bh_user_resolve("nobody:no-such-group-bh", &u, err, sizeof(err)),
	    -ENOENT);
	assert_string_equal(err, "--user: no group 'no-such-group-bh'");
	assert_int_equal(bh_user_resolve("4000123", &u, err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "--user: uid 4000123 has no passwd entry: "
				 "give its group too (4000123:GROUP)");
	assert_int_equal(bh_user_resolve("", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(bh_user_resolve(":0", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(bh_user_resolve("root:", &u, err, sizeof(err)),
			 -EINVAL);
	/* (uid_t)-1 means "unchanged" to setresuid: not an id */
	assert_int_equal(bh_user_resolve("4294967295:0", &u, err, sizeof(err)),
			 -ENOENT);
}

static void test_current(void **state)
{
	struct bh_user u = { .uid = getuid(), .gid = getgid() };

	(void)state;
	assert_true(bh_user_is_current(&u));
	u.uid++;
	assert_false(bh_user_is_current(&u));
	u.uid--;
	u.gid++;
	assert_false(bh_user_is_current(&u));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_ids),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_current),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
