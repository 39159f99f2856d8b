/* Unit tests for the TAP queues of virtio-net (controller/tap.c), as root in
 * a network namespace of the test's own, so that no host interface is
 * touched. Without root or /dev/net/tun the test fails: it cannot check
 * what it is for. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tap.h"

static int setup_netns(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "test_tap: needs root (a network namespace "
				"and /dev/net/tun)\n");
		return -1;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "test_tap: unshare(CLONE_NEWNET): %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

static void net_init(struct bh_net_config *nc, char *tap, unsigned int nq)
{
	memset(nc, 0, sizeof(*nc));
	nc->tap = tap;
	nc->num_queues = nq;
	nc->queue_size = BH_CONFIG_NET_QUEUE_SIZE;
	nc->mtu = BH_CONFIG_NET_MTU;
}

static unsigned int tap_flags(int fd)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0);
	return (unsigned int)(unsigned short)ifr.ifr_flags;
}

/* A TAP fd made here as a caller such as libvirt would. */
static int make_tap(const char *name, unsigned int flags)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = (short)flags;
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	return fd;
}

static void test_by_name_with_address(void **state)
{
	struct bh_net_config nc;
	char name[] = "bhtest0", err[256] = "";
	int fds[BH_CONFIG_MAX_NET_PAIRS], s, hdr = 0;
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	(void)state;
	net_init(&nc, name, 4);
	inet_pton(AF_INET, "192.168.249.1", &nc.ip);
	inet_pton(AF_INET, "255.255.255.0", &nc.mask);
	assert_int_equal(bh_tap_pairs(&nc), 2);
	assert_int_equal(bh_tap_open(&nc, fds, err, sizeof(err)), 0);
	for (unsigned int i = 0; i < 2; i++) {
		unsigned int f = tap_flags(fds[i]);

		assert_true(f & IFF_TAP);
		assert_true(f & IFF_NO_PI);
		assert_true(f & IFF_VNET_HDR);
		assert_true(f & IFF_MULTI_QUEUE);
		assert_true(fcntl(fds[i], F_GETFL) & O_NONBLOCK);
		assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
		assert_int_equal(ioctl(fds[i], TUNGETVNETHDRSZ, &hdr), 0);
		assert_int_equal(hdr, BH_TAP_VNET_HDR_LEN);
	}
	assert_int_equal(fds[2], -1);

	/* the host side: address, mask, up */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(s, SIOCGIFADDR, &ifr), 0);
	assert_int_equal(sin->sin_addr.s_addr, nc.ip);
	assert_int_equal(ioctl(s, SIOCGIFNETMASK, &ifr), 0);
	assert_int_equal(sin->sin_addr.s_addr, nc.mask);
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	assert_true(ifr.ifr_flags & IFF_UP);
	close(s);
	close(fds[0]);
	close(fds[1]);
}

/* A TAP made without multi_queue serves one pair, and is refused for two
 * with a message that says why. */
static void test_single_queue_tap(void **state)
{
	struct bh_net_config nc;
	char name[] = "bhtest1", err[256] = "";
	int fds[BH_CONFIG_MAX_NET_PAIRS];
	int keep = make_tap(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);

	(void)state;
	/* persistent, so that it outlives the creator's fd */
	assert_int_equal(ioctl(keep, TUNSETPERSIST, 1), 0);
	close(keep);
	net_init(&nc, name, 2);
	assert_int_equal(bh_tap_open(&nc, fds, err, sizeof(err)), 0);
	assert_false(tap_flags(fds[0]) & IFF_MULTI_QUEUE);
	close(fds[0]);

	net_init(&nc, name, 4);
	assert_int_equal(bh_tap_open(&nc, fds, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "tap=bhtest1"));
	assert_non_null(strstr(err, "multi_queue"));
	for (unsigned int i = 0; i < BH_CONFIG_MAX_NET_PAIRS; i++)
		assert_int_equal(fds[i], -1);
}

static void test_handed_in(void **state)
{
	struct bh_net_config nc;
	char err[256] = "";
	int fds[BH_CONFIG_MAX_NET_PAIRS], a, b, hdr = 0;

	(void)state;
	a = make_tap("bhtest2",
		     IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE);
	b = make_tap("bhtest2",
		     IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE);
	net_init(&nc, NULL, 4);
	nc.fds[0] = a;
	nc.fds[1] = b;
	nc.nfds = 2;
	assert_int_equal(bh_tap_open(&nc, fds, err, sizeof(err)), 0);
	/* ours now: the caller's are closed */
	assert_true(fcntl(a, F_GETFD) < 0);
	assert_true(fcntl(b, F_GETFD) < 0);
	assert_true(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
	assert_int_equal(ioctl(fds[1], TUNGETVNETHDRSZ, &hdr), 0);
	assert_int_equal(hdr, BH_TAP_VNET_HDR_LEN);
	close(fds[0]);
	close(fds[1]);
}

static void test_handed_in_refused(void **state)
{
	struct bh_net_config nc;
	char err[256] = "";
	int fds[BH_CONFIG_MAX_NET_PAIRS], p[2], t;

	(void)state;
	/* not a TAP at all */
	assert_int_equal(pipe(p), 0);
	net_init(&nc, NULL, 2);
	nc.fds[0] = p[0];
	nc.nfds = 1;
	assert_int_equal(bh_tap_open(&nc, fds, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is not a TAP"));
	/* nothing taken: the caller's fd stays open */
	assert_true(fcntl(p[0], F_GETFD) >= 0);
	close(p[0]);
	close(p[1]);

	/* a TAP without the vnet header */
	t = make_tap("bhtest3", IFF_TAP | IFF_NO_PI);
	nc.fds[0] = t;
	assert_int_equal(bh_tap_open(&nc, fds, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "IFF_VNET_HDR"));
	close(t);

	/* not open */
	nc.fds[0] = 1000;
	assert_int_equal(bh_tap_open(&nc, fds, err, sizeof(err)), -EBADF);
	assert_non_null(strstr(err, "fd=1000 is not open"));

	/* one fd for two pairs */
	net_init(&nc, NULL, 4);
	nc.fds[0] = 0;
	nc.nfds = 1;
	assert_int_equal(bh_tap_open(&nc, fds, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "1 fds for 2 queue pairs"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_by_name_with_address),
		cmocka_unit_test(test_single_queue_tap),
		cmocka_unit_test(test_handed_in),
		cmocka_unit_test(test_handed_in_refused),
	};

	return cmocka_run_group_tests(tests, setup_netns, NULL);
}
