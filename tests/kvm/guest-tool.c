/* bh-guest-tool: what the test guests need beyond busybox, built static
 * into their initramfs: vsock streams (busybox has none) and a cheap
 * deterministic data stream for transfers whose checksum both ends compute.
 *
 *   bh-guest-tool gen BYTES SEED          a pattern on stdout
 *   bh-guest-tool fnv BYTES SEED          that pattern's FNV-1a, in hex
 *   bh-guest-tool vsock-listen PORT [N]   accepts N (default 1) connections
 *                                         one after another; each: stdin to
 *                                         the peer (N = 1 only), the peer's
 *                                         bytes to stdout
 *   bh-guest-tool vsock-connect CID PORT  connects; stdin to the peer, the
 *                                         peer's bytes to stdout
 *   bh-guest-tool vsock-serve PORT N BYTES
 *                                         accepts N connections at once and
 *                                         on each sends BYTES of the pattern
 *                                         seeded by the connection's number,
 *                                         then prints "served N"
 *   bh-guest-tool vsock-sink CID PORT N   makes N connections at once, reads
 *                                         each to its end and prints the
 *                                         bytes each gave: "conn I BYTES SUM"
 *                                         (SUM: a 64-bit FNV-1a of the data)
 *   bh-guest-tool channels IFACE N        asks the NIC's driver for N combined
 *                                         channels (ethtool -L IFACE combined
 *                                         N; busybox has no ethtool)
 *   bh-guest-tool tcp-send HOST PORT BYTES SEED
 *                                         connects over TCP (IPv4) and sends
 *                                         BYTES of the pattern, 64 KiB per
 *                                         write (what gen | nc does, without
 *                                         the pipe and nc's small writes)
 *   bh-guest-tool tcp-rr HOST PORT N      connects over TCP (IPv4, no Nagle)
 *                                         and makes N round trips of one
 *                                         byte each way, one at a time;
 *                                         prints "rr N NS" (NS: nanoseconds
 *                                         they took by the guest's clock)
 *
 * Exit status 0 on success, 1 with a message on stderr otherwise. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

static int die(const char *what)
{
	fprintf(stderr, "bh-guest-tool: %s: %s\n", what, strerror(errno));
	return 1;
}

/* xorshift64: the pattern the host side makes too (tests/kvm). */
static void pattern(uint8_t *buf, size_t n, uint64_t *state)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = *state;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		*state = x;
		memcpy(buf + i, &x, n - i < 8 ? n - i : 8);
	}
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int gen(uint64_t bytes, uint64_t seed, int fd)
{
	static uint8_t buf[65536];
	uint64_t st = seed ? seed : 1;

	while (bytes > 0) {
		size_t n = bytes < sizeof(buf) ? (size_t)bytes : sizeof(buf);

		pattern(buf, sizeof(buf), &st);
		if (write_all(fd, buf, n) < 0)
			return -1;
		bytes -= n;
	}
	return 0;
}

/* stdin to s and s to stdout until both directions end. */
static int pump(int s, int use_stdin)
{
	static uint8_t buf[65536];
	struct pollfd p[2] = { { s, POLLIN, 0 }, { 0, POLLIN, 0 } };
	int in_open = use_stdin, out_open = 1;

	if (!use_stdin)
		shutdown(s, SHUT_WR);
	while (out_open) {
		if (poll(p, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return die("poll");
		}
		if (in_open && p[1].revents) {
			ssize_t n = read(0, buf, sizeof(buf));

			if (n <= 0) {
				in_open = 0;
				shutdown(s, SHUT_WR);
			} else if (write_all(s, buf, (size_t)n) < 0) {
				return die("send");
			}
		}
		if (p[0].revents) {
			ssize_t n = read(s, buf, sizeof(buf));

			if (n < 0)
				return die("recv");
			if (n == 0)
				out_open = 0;
			else if (write_all(1, buf, (size_t)n) < 0)
				return die("stdout");
		}
	}
	return 0;
}

static int vsock_listener(unsigned int port, int backlog)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK,
				 .svm_cid = VMADDR_CID_ANY,
				 .svm_port = port };
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s, backlog) < 0)
		return -1;
	return s;
}

static int vsock_connect(unsigned int cid, unsigned int port)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK,
				 .svm_cid = cid,
				 .svm_port = port };
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	return s;
}

static int tcp_connect(const char *host, unsigned int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	int s;

	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		fprintf(stderr, "bh-guest-tool: %s: not an IPv4 address\n",
			host);
		errno = EINVAL;
		return -1;
	}
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

static int tcp_send(const char *host, unsigned int port, uint64_t bytes,
		    uint64_t seed)
{
	int s = tcp_connect(host, port);

	if (s < 0)
		return die("connect");
	if (gen(bytes, seed, s) < 0)
		return die("send");
	if (close(s) < 0)
		return die("close");
	return 0;
}

/* Request/response latency: each round trip waits for the last, so their
 * rate is 1 / (one round trip), the figure the network benchmark wants. */
static int tcp_rr(const char *host, unsigned int port, long n)
{
	struct timespec t0, t1;
	long long ns;
	uint8_t b = 0;
	int one = 1;
	int s = tcp_connect(host, port);

	if (s < 0)
		return die("connect");
	/* Without it, each 1-byte send after the first waits for an ACK. */
	if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return die("TCP_NODELAY");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++) {
		ssize_t r;

		if (write_all(s, &b, 1) < 0)
			return die("send");
		do
			r = read(s, &b, 1);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return die("recv");
		if (r == 0) {
			fprintf(stderr,
				"bh-guest-tool: the peer closed after %ld "
				"round trips\n",
				i);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL +
	     (t1.tv_nsec - t0.tv_nsec);
	printf("rr %ld %lld\n", n, ns);
	close(s);
	return 0;
}

#define FNV_INIT 0xcbf29ce484222325ULL

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Children, one per connection, then the results in order. */
static int wait_all(int n)
{
	int bad = 0, st;

	for (int i = 0; i < n; i++)
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			bad++;
	return bad ? 1 : 0;
}

/*
 * dirty MIB STOPFILE: rewrites MIB MiB of its own memory page by page, each
 * pass with the next generation number, until STOPFILE exists; then checks
 * that every page holds the last generation (a page a migration missed
 * holds an older one) and says DIRTY_OK or DIRTY_BAD.
 */
static int dirty(uint64_t mib, const char *stop)
{
	size_t n = (size_t)(mib << 20), pages = n / 4096;
	uint64_t *m = mmap(NULL, n, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	uint64_t gen = 0;

	if (m == MAP_FAILED)
		return die("mmap");
	printf("DIRTY_RUNNING\n");
	fflush(stdout);
	for (;;) {
		gen++;
		for (size_t p = 0; p < pages; p++) {
			m[p * 512] = gen;
			m[p * 512 + 511] = gen ^ p;
		}
		if (access(stop, F_OK) == 0)
			break;
	}
	for (size_t p = 0; p < pages; p++)
		if (m[p * 512] != gen || m[p * 512 + 511] != (gen ^ p)) {
			printf("DIRTY_BAD page %zu holds generation %llu, the "
			       "last was %llu\n",
			       p, (unsigned long long)m[p * 512],
			       (unsigned long long)gen);
			return 1;
		}
	printf("DIRTY_OK %llu generations of %zu pages\n",
	       (unsigned long long)gen, pages);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "dirty") && argc == 4)
		return dirty(strtoull(argv[2], NULL, 0), argv[3]);
	if (!strcmp(cmd, "tcp-send") && argc == 6)
		return tcp_send(
		    argv[2], (unsigned int)strtoul(argv[3], NULL, 0),
		    strtoull(argv[4], NULL, 0), strtoull(argv[5], NULL, 0));
	if (!strcmp(cmd, "gen") && argc == 4)
		return gen(strtoull(argv[2], NULL, 0),
			   strtoull(argv[3], NULL, 0), 1)
			   ? die("write")
			   : 0;
	if (!strcmp(cmd, "fnv") && argc == 4) {
		static uint8_t buf[65536];
		uint64_t left = strtoull(argv[2], NULL, 0);
		uint64_t st = strtoull(argv[3], NULL, 0), h = FNV_INIT;

		st = st ? st : 1;
		while (left > 0) {
			size_t n =
			    left < sizeof(buf) ? (size_t)left : sizeof(buf);

			pattern(buf, sizeof(buf), &st);
			h = fnv(h, buf, n);
			left -= n;
		}
		printf("%016llx\n", (unsigned long long)h);
		return 0;
	}
	if (!strcmp(cmd, "vsock-listen") && (argc == 3 || argc == 4)) {
		int n = argc == 4 ? atoi(argv[3]) : 1;
		int l = vsock_listener((unsigned int)atoi(argv[2]), 64);

		if (l < 0)
			return die("listen");
		printf("listening\n");
		fflush(stdout);
		for (int i = 0; i < n; i++) {
			int c = accept(l, NULL, NULL);

			if (c < 0)
				return die("accept");
			if (pump(c, n == 1))
				return 1;
			close(c);
		}
		return 0;
	}
	if (!strcmp(cmd, "vsock-connect") && argc == 4) {
		int s = vsock_connect((unsigned int)atoi(argv[2]),
				      (unsigned int)atoi(argv[3]));

		if (s < 0)
			return die("connect");
		return pump(s, 1);
	}
	if (!strcmp(cmd, "vsock-serve") && argc == 5) {
		int n = atoi(argv[3]);
		uint64_t bytes = strtoull(argv[4], NULL, 0);
		int l = vsock_listener((unsigned int)atoi(argv[2]), n);

		if (l < 0)
			return die("listen");
		printf("listening\n");
		fflush(stdout);
		for (int i = 0; i < n; i++) {
			int c = accept(l, NULL, NULL);

			if (c < 0)
				return die("accept");
			if (fork() == 0) {
				char line[32];
				ssize_t got;
				uint64_t seed;

				/* the peer says which pattern it wants */
				got = read(c, line, sizeof(line) - 1);
				if (got <= 0)
					_exit(1);
				line[got] = 0;
				seed = strtoull(line, NULL, 10);
				_exit(gen(bytes, seed, c) ? 1 : 0);
			}
			close(c);
		}
		if (wait_all(n))
			return 1;
		printf("served %d\n", n);
		return 0;
	}
	if (!strcmp(cmd, "vsock-sink") && argc == 5) {
		int n = atoi(argv[4]);

		for (int i = 0; i < n; i++) {
			if (fork() == 0) {
				static uint8_t buf[65536];
				uint64_t h = FNV_INIT, total = 0;
				int s =
				    vsock_connect((unsigned int)atoi(argv[2]),
						  (unsigned int)atoi(argv[3]));
				ssize_t r;

				if (s < 0)
					_exit(die("connect"));
				dprintf(s, "%d\n", i + 1);
				while ((r = read(s, buf, sizeof(buf))) > 0) {
					h = fnv(h, buf, (size_t)r);
					total += (uint64_t)r;
				}
				if (r < 0)
					_exit(die("recv"));
				printf("conn %d %llu %016llx\n", i + 1,
				       (unsigned long long)total,
				       (unsigned long long)h);
				fflush(stdout);
				_exit(0);
			}
		}
		return wait_all(n);
	}
	if (!strcmp(cmd, "channels") && argc == 4) {
		struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
		struct ifreq ifr;
		int s = socket(AF_INET, SOCK_DGRAM, 0);

		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[2]);
		ifr.ifr_data = (char *)&ch;
		if (s < 0 || ioctl(s, SIOCETHTOOL, &ifr) < 0)
			return die("ETHTOOL_GCHANNELS");
		ch.cmd = ETHTOOL_SCHANNELS;
		ch.combined_count = (uint32_t)atoi(argv[3]);
		if (ioctl(s, SIOCETHTOOL, &ifr) < 0)
			return die("ETHTOOL_SCHANNELS");
		printf("channels %u of %u\n", ch.combined_count,
		       ch.max_combined);
		return 0;
	}
	if (!strcmp(cmd, "tcp-rr") && argc == 5) {
		long n = atol(argv[4]);

		if (n <= 0) {
			fprintf(stderr, "bh-guest-tool: tcp-rr: N must be "
					"positive\n");
			return 1;
		}
		return tcp_rr(argv[2], (unsigned int)atoi(argv[3]), n);
	}
	fprintf(stderr,
		"usage: bh-guest-tool gen BYTES SEED | vsock-listen "
		"PORT [N] | vsock-connect CID PORT | vsock-serve PORT "
		"N BYTES | vsock-sink CID PORT N | tcp-send HOST PORT "
		"BYTES SEED | tcp-rr HOST PORT N | dirty MIB STOPFILE\n");
	return 2;
}
