/* TAP queues for virtio-net, opened and configured by the controller (the
 * net worker never sees /dev/net/tun or a socket). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "tap.h"

#define TUN_PATH "/dev/net/tun"

unsigned int bh_tap_pairs(const struct bh_net_config *nc)
{
	unsigned int pairs = nc->num_queues / 2;

	return pairs ? pairs : 1;
}

static void close_all(int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		bh_closep(&fds[i]);
}

static int set_hdr_len(int fd)
{
	int len = BH_TAP_VNET_HDR_LEN;

	return ioctl(fd, TUNSETVNETHDRSZ, &len) < 0 ? -errno : 0;
}

/* The hint for a TAP we may not attach to: who may create one for us. */
static const char *perm_hint(void)
{
	return " (as root: ip tuntap add NAME mode tap multi_queue vnet_hdr "
	       "user USER, for the user bulkhead runs as)";
}

static int attach_one(const char *name, bool multi, int *out, char *err,
		      size_t errlen)
{
	struct ifreq ifr;
	int fd, r;

	fd = open(TUN_PATH, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "--net: tap=%s: cannot open %s: %s", name,
			 TUN_PATH, strerror(-r));
		return r;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags =
	    IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		close(fd);
		if (r == -EPERM || r == -EACCES)
			snprintf(err, errlen,
				 "--net: tap=%s: not allowed to attach to or "
				 "create it%s",
				 name, perm_hint());
		else if (r == -EINVAL)
			snprintf(err, errlen,
				 "--net: tap=%s: exists with other flags "
				 "(not a TAP, or %s)",
				 name,
				 multi ? "without multi_queue: more than one "
					 "queue pair needs it"
				       : "in use by another process");
		else if (r == -EBUSY)
			snprintf(err, errlen,
				 "--net: tap=%s: in use by another process",
				 name);
		else
			snprintf(err, errlen, "--net: tap=%s: %s", name,
				 strerror(-r));
		return r;
	}
	r = set_hdr_len(fd);
	if (r < 0) {
		close(fd);
		snprintf(err, errlen,
			 "--net: tap=%s: cannot set the vnet header size: %s",
			 name, strerror(-r));
		return r;
	}
	*out = fd;
	return 0;
}

/* The host side of the link with ip=: address, mask and up. Needs
 * CAP_NET_ADMIN, so it is done at start-up as root (the API refuses ip=:
 * the controller has dropped its capabilities by then, and its filter
 * allows no AF_INET socket). Without ip= the link is left as its owner set
 * it. */
static int configure_link(const struct bh_net_config *nc, char *err,
			  size_t errlen)
{
	struct ifreq ifr;
	struct sockaddr_in *sin;
	int s, r = 0;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		r = -errno;
		snprintf(err, errlen,
			 "--net: tap=%s: no socket to set it up: %s", nc->tap,
			 strerror(-r));
		return r;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", nc->tap);
	{
		sin = (struct sockaddr_in *)&ifr.ifr_addr;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = nc->ip;
		if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
			r = -errno;
			snprintf(err, errlen,
				 "--net: tap=%s: cannot set ip=: %s%s", nc->tap,
				 strerror(-r),
				 r == -EPERM ? " (setting the address needs "
					       "root at start-up; or leave "
					       "ip= out and set the TAP up "
					       "beforehand)"
					     : "");
			goto out;
		}
		sin = (struct sockaddr_in *)&ifr.ifr_netmask;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = nc->mask;
		if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) {
			r = -errno;
			snprintf(err, errlen,
				 "--net: tap=%s: cannot set mask=: %s", nc->tap,
				 strerror(-r));
			goto out;
		}
	}
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		r = -errno;
		snprintf(err, errlen,
			 "--net: tap=%s: cannot read its flags: %s", nc->tap,
			 strerror(-r));
		goto out;
	}
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
			r = -errno;
			snprintf(err, errlen,
				 "--net: tap=%s: cannot bring it up: %s",
				 nc->tap, strerror(-r));
			goto out;
		}
	}
out:
	close(s);
	return r;
}

static int open_by_name(const struct bh_net_config *nc, int *fds, char *err,
			size_t errlen)
{
	unsigned int pairs = bh_tap_pairs(nc);
	bool multi = true;
	int r;

	for (unsigned int i = 0; i < pairs; i++) {
		r = attach_one(nc->tap, multi, &fds[i], err, errlen);
		/* One pair needs no multi_queue: a TAP made without it (a
		 * plain "ip tuntap add") is taken as it is. */
		if (r == -EINVAL && pairs == 1 && multi) {
			multi = false;
			r = attach_one(nc->tap, multi, &fds[i], err, errlen);
		}
		if (r < 0) {
			close_all(fds, i);
			return r;
		}
	}
	r = nc->ip ? configure_link(nc, err, errlen) : 0;
	if (r < 0) {
		close_all(fds, pairs);
		return r;
	}
	return 0;
}

static int take_fd(const struct bh_net_config *nc, unsigned int i,
		   unsigned int pairs, int *out, char *err, size_t errlen)
{
	int in = nc->fds[i], fd, fl, r;
	struct ifreq ifr;
	const unsigned int need = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;

	if (fcntl(in, F_GETFD) < 0) {
		snprintf(err, errlen, "--net: fd=%d is not open", in);
		return -EBADF;
	}
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(in, TUNGETIFF, &ifr) < 0) {
		snprintf(err, errlen,
			 "--net: fd=%d is not a TAP queue (TUNGETIFF: %s)", in,
			 strerror(errno));
		return -EINVAL;
	}
	if (((unsigned int)ifr.ifr_flags & need) != need ||
	    (pairs > 1 && !(ifr.ifr_flags & IFF_MULTI_QUEUE))) {
		snprintf(err, errlen,
			 "--net: fd=%d (%.*s) lacks a flag: it needs IFF_TAP, "
			 "IFF_NO_PI and IFF_VNET_HDR%s",
			 in, IFNAMSIZ, ifr.ifr_name,
			 pairs > 1 ? ", and IFF_MULTI_QUEUE for more than "
				     "one queue pair"
				   : "");
		return -EINVAL;
	}
	fd = fcntl(in, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "--net: fd=%d: %s", in, strerror(-r));
		return r;
	}
	fl = fcntl(fd, F_GETFL);
	r = 0;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		r = -errno;
	else
		r = set_hdr_len(fd);
	if (r < 0) {
		close(fd);
		snprintf(err, errlen, "--net: fd=%d: cannot set it up: %s", in,
			 strerror(-r));
		return r;
	}
	*out = fd;
	return 0;
}

int bh_tap_open(const struct bh_net_config *nc, int *fds, char *err,
		size_t errlen)
{
	unsigned int pairs = bh_tap_pairs(nc);
	int r;

	for (unsigned int i = 0; i < BH_CONFIG_MAX_NET_PAIRS; i++)
		fds[i] = -1;
	if (pairs > BH_CONFIG_MAX_NET_PAIRS)
		return bh_errf(err, errlen, "--net: %u queue pairs, at most %u",
			       pairs, BH_CONFIG_MAX_NET_PAIRS);
	if (nc->tap)
		return open_by_name(nc, fds, err, errlen);
	if (nc->nfds != pairs)
		return bh_errf(err, errlen,
			       "--net: %u fds for %u queue pairs: give one "
			       "per pair",
			       nc->nfds, pairs);
	for (unsigned int i = 0; i < pairs; i++) {
		r = take_fd(nc, i, pairs, &fds[i], err, errlen);
		if (r < 0) {
			close_all(fds, i);
			return r;
		}
	}
	/* Ours now: the caller's copies are not kept open beside them. */
	for (unsigned int i = 0; i < pairs; i++)
		close(nc->fds[i]);
	return 0;
}
