/* Unit tests for the seccomp audit records of the kernel log
 * (controller/kmsg.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <bulkhead/log.h>

#include "kmsg.h"

/* What the kernel printed on this kind of host for a worker that opened a
 * file after its filter: /dev/kmsg's form, then dmesg's. */
#define AUDIT_MSG                                                             \
	"audit: type=1326 audit(1795448045.332:222): auid=4294967295 uid=0 "  \
	"gid=0 ses=4294967295 pid=24551 comm=\"bulkhead-dev-rn\" "            \
	"exe=\"/work/main/build/bin/bulkhead-dev-rng\" sig=31 arch=c000003e " \
	"syscall=257 compat=0 ip=0x7f5151c40011 code=0x80000000"

static bool match(const char *line, pid_t pid, long *nr)
{
	*nr = -1;
	return bh_kmsg_seccomp_match(line, strlen(line), pid, nr);
}

static void test_formats(void **state)
{
	long nr;

	(void)state;
	/* /dev/kmsg: prio,seq,usec,flags;message */
	assert_true(match("12,5021,17373344948,-;" AUDIT_MSG, 24551, &nr));
	assert_int_equal(nr, 257);
	/* ... with continuation lines after it */
	assert_true(match("12,5021,17373344948,-,caller=T1;" AUDIT_MSG
			  "\n SUBSYSTEM=x\n",
			  24551, &nr));
	assert_int_equal(nr, 257);
	/* dmesg */
	assert_true(match("[17373.344948] " AUDIT_MSG, 24551, &nr));
	assert_int_equal(nr, 257);
	/* the message alone */
	assert_true(match(AUDIT_MSG, 24551, &nr));
	assert_int_equal(nr, 257);
	/* no audit(...) stamp */
	assert_true(match("4,7,8,-;audit: type=1326 pid=99 comm=\"x\" sig=31 "
			  "arch=c000003e syscall=101 compat=0",
			  99, &nr));
	assert_int_equal(nr, 101);
	/* auditd's own log */
	assert_true(match("type=SECCOMP msg=audit(1700000000.1:5): auid=0 "
			  "uid=0 gid=0 ses=1 pid=4242 comm=\"a\" sig=31 "
			  "arch=c000003e syscall=165 compat=0",
			  4242, &nr));
	assert_int_equal(nr, 165);
}

static void test_not_ours(void **state)
{
	long nr;

	(void)state;
	/* another pid, or one that merely starts with ours */
	assert_false(match("12,1,2,-;" AUDIT_MSG, 2455, &nr));
	assert_false(match("12,1,2,-;" AUDIT_MSG, 245510, &nr));
	assert_false(match("12,1,2,-;" AUDIT_MSG, 1, &nr));
	/* ppid= is not pid= */
	assert_false(
	    match("audit: type=1326 ppid=77 sig=31 syscall=1", 77, &nr));
	/* another audit type with the same fields */
	assert_false(match("audit: type=1300 audit(1:2): arch=c000003e "
			   "syscall=257 success=yes pid=24551 sig=31",
			   24551, &nr));
	/* SECCOMP_RET_LOG: the same record, but nobody was killed */
	assert_false(match("audit: type=1326 audit(1:2): pid=24551 sig=0 "
			   "arch=c000003e syscall=257 code=0x7ffc0000",
			   24551, &nr));
	/* other kernel messages */
	assert_false(match("6,100,200,-;eth0: link up", 24551, &nr));
	assert_false(match("", 24551, &nr));
	assert_false(
	    match("audit: type=1326 pid=24551 sig=31 syscall=", 24551, &nr));
	assert_false(
	    match("audit: type=1326 pid=24551 sig=31 syscall=x1", 24551, &nr));
	assert_false(
	    match("audit: type=1326 pid=-24551 sig=31 syscall=1", -24551, &nr));
	/* the fields of a second line are not the record's */
	assert_false(match("6,1,2,-;audit: type=1326 sig=31 syscall=1\n "
			   "pid=24551",
			   24551, &nr));
	/* a ';' inside a message is not the end of a kmsg prefix */
	assert_true(
	    match("x y;audit: type=1326 pid=5 sig=31 syscall=1", 5, &nr));
	assert_int_equal(nr, 1);
}

/* A SOCK_SEQPACKET pair keeps record boundaries as /dev/kmsg does. */
static void pair(int sv[2])
{
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
}

static void put(int fd, const char *rec)
{
	assert_int_equal(write(fd, rec, strlen(rec)), (ssize_t)strlen(rec));
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void test_find(void **state)
{
	struct bh_kmsg k;
	struct timespec t0;
	int sv[2];
	long nr = 0;

	(void)state;
	pair(sv);
	k.fd = sv[0];
	/* other records first, then another pid's kill, then ours */
	put(sv[1], "6,1,1,-;usb 1-1: new device");
	put(sv[1], "12,2,2,-;audit: type=1326 audit(1:2): pid=7 sig=31 "
		   "arch=c000003e syscall=2 compat=0");
	put(sv[1], "12,3,3,-;audit: type=1326 audit(1:3): pid=8 sig=31 "
		   "arch=c000003e syscall=59 compat=0");
	assert_int_equal(bh_kmsg_find_seccomp(&k, 8, 50, &nr), 1);
	assert_int_equal(nr, 59);
	/* nothing more: a bounded wait, then 0 */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(bh_kmsg_find_seccomp(&k, 8, 60, &nr), 0);
	assert_true(elapsed_ms(&t0) >= 55);
	assert_true(elapsed_ms(&t0) < 1000);
	/* without the log */
	k.fd = -1;
	assert_int_equal(bh_kmsg_find_seccomp(&k, 8, 10, &nr), -EBADF);
	assert_int_equal(bh_kmsg_find_seccomp(NULL, 8, 10, &nr), -EBADF);
	close(sv[0]);
	close(sv[1]);
}

/* What bh_kmsg_report_sigsys logs, from stderr. */
static bool report(struct bh_kmsg *k, pid_t pid, int status, char *out,
		   size_t outlen)
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;
	bool r;

	assert_non_null(f);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	r = bh_kmsg_report_sigsys(k, pid, status, "worker disk0 (blk)");
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	fclose(f);
	return r;
}

static void test_report(void **state)
{
	struct bh_kmsg k;
	char out[1024];
	int sv[2];

	(void)state;
	bh_log_init("test");
	pair(sv);
	k.fd = sv[0];
	put(sv[1], "12,3,3,-;audit: type=1326 audit(1:3): pid=4321 sig=31 "
		   "arch=c000003e syscall=257 compat=0");
	assert_true(report(&k, 4321, SIGSYS, out, sizeof(out)));
	assert_non_null(strstr(out, "worker disk0 (blk) killed by its seccomp "
				    "filter for syscall openat (257)"));
	/* the record does not come: where to look instead */
	assert_true(report(&k, 4321, SIGSYS, out, sizeof(out)));
	assert_non_null(strstr(out, "worker disk0 (blk) killed by its seccomp "
				    "filter (SIGSYS); the kernel log's audit "
				    "record type=1326 for pid 4321 names the "
				    "syscall"));
	k.fd = -1;
	assert_true(report(&k, 4321, SIGSYS, out, sizeof(out)));
	assert_non_null(strstr(out, "for pid 4321 names the syscall (/dev/kmsg "
				    "could not be read here)"));
	/* not SIGSYS: nothing */
	k.fd = sv[0];
	assert_false(report(&k, 4321, SIGKILL, out, sizeof(out)));
	assert_string_equal(out, "");
	assert_false(report(&k, 4321, 1 << 8, out, sizeof(out)));
	assert_string_equal(out, "");
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_not_ours),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_report),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
