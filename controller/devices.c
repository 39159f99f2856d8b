/* The controller's side of the virtio devices: opens each backend, runs one
 * sandboxed worker per device per boot, and relays the rare control
 * messages between the vCPU runner's transport and the workers. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/inflight.h>
#include <bulkhead/log.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "backend.h"
#include "devices.h"
#include "kmsg.h"
#include "launcher.h"
#include "tap.h"
#include "vsock.h"

/* The tests build this file with shorter timeouts. */
#ifndef WORKER_SETUP_TIMEOUT
#define WORKER_SETUP_TIMEOUT 10000 /* ms, handshake, set-up and sandbox */
#endif
#define WORKER_EXIT_TIMEOUT 2000 /* ms, after QUIT before SIGKILL */
#define WORKER_EOF_GRACE    200	 /* ms, from its closed socket to its exit */
/* ms a worker has to answer a reset or a counters request, or to finish a
 * frame it began: then it counts as stuck and is replaced. */
#ifndef WORKER_ANSWER_TIMEOUT
#define WORKER_ANSWER_TIMEOUT 10000
#endif
/* Frames taken from one worker per wake-up of the loop, so that a worker
 * that never stops sending cannot starve the runner, the API and the
 * other devices. */
#define WORKER_FRAMES_PER_WAKE 32
/* ms a worker's socket may stay full before the worker counts as stuck: a
 * worker that stops reading must not block the controller's loop. */
#ifndef WORKER_SEND_TIMEOUT
#define WORKER_SEND_TIMEOUT 1000
#endif
#define DISK_SECTOR	  512
#define RESTART_WINDOW_MS 60000 /* --restart-devices max=N per this */

enum dev_kind {
	DEV_BLK = 0,
	DEV_CONSOLE,
	DEV_RNG,
	DEV_NET,
	DEV_VSOCK,
};

static const struct {
	const char *name; /* bulkhead-dev-<name>, handshake role dev-<name> */
	uint32_t virtio_id;
	Bh__WorkerSetup__BackendCase backend;
	enum bh_launch_kind launch;
} kinds[] = {
	[DEV_BLK] = { "blk", 2, BH__WORKER_SETUP__BACKEND_BLK, BH_LAUNCH_BLK },
	[DEV_CONSOLE] = { "console", 3, BH__WORKER_SETUP__BACKEND_CONSOLE,
			  BH_LAUNCH_CONSOLE },
	[DEV_RNG] = { "rng", 4, BH__WORKER_SETUP__BACKEND_RNG, BH_LAUNCH_RNG },
	[DEV_NET] = { "net", 1, BH__WORKER_SETUP__BACKEND_NET, BH_LAUNCH_NET },
	[DEV_VSOCK] = { "vsock", 19, BH__WORKER_SETUP__BACKEND_VSOCK,
			BH_LAUNCH_VSOCK },
};

/* Backend fds of one device at most: a TAP queue per net queue pair. */
#define DEV_MAX_BACKEND BH_CONFIG_MAX_NET_PAIRS

enum worker_state {
	WK_NONE = 0, /* no worker (not started, or stopped) */
	WK_SETUP,    /* waiting for WORKER_READY */
	WK_READY,    /* serving */
	WK_DEAD,     /* died or misbehaved during this boot */
};

struct dev {
	struct bh_devices *devs;
	unsigned int index;
	enum dev_kind kind;
	char id[BH_CONFIG_ID_MAX + 1];
	const struct bh_disk_config *disk; /* DEV_BLK */
	uint64_t disk_size;
	const struct bh_net_config *net;     /* DEV_NET */
	uint8_t mac[6];			     /* DEV_NET: given or made up */
	const struct bh_vsock_config *vsock; /* DEV_VSOCK */
	/* DEV_VSOCK: listens on socket=, connects to socket=_PORT (owned) */
	struct bh_vsock_broker *broker;
	/* owned, opened at create, kept across boots */
	int backend[DEV_MAX_BACKEND];
	/* the console's stdout flags to give back on close, when its open
	 * file description is shared with others (bh_backend_stdout); or -1 */
	int out_shared_flags;
	unsigned int nbackend;
	char binary[4096];

	/* Per boot. */
	enum worker_state ws;
	pid_t pid;
	int sock;
	struct bh_frame_reader rd;
	struct event *ev;
	bool reset_pending;
	int kick[BH_MAX_QUEUES];
	int call[BH_MAX_QUEUES];

	/* The driver's last activation, kept to hand to a replacement
	 * worker, with the in-flight records the workers keep. */
	bool active;
	uint64_t driver_features;
	Bh__VirtQueue queues[BH_MAX_QUEUES];
	unsigned int nqueues;
	int inflight;
	uint64_t inflight_size;
	/* Replaced by a worker that fails every request: for good. */
	bool failed;
	uint64_t restarts[BH_CONFIG_MAX_RESTARTS]; /* ms, a ring */
	unsigned int nrestarts;

	/* From WORKER_READY. */
	uint64_t features;
	unsigned int nq;
	unsigned int qsize;
	uint8_t config[BH_VIRTIO_CONFIG_MAX];
	size_t config_len;

	/* The counters collection under way. */
	bool counters_pending;
	unsigned int counters_asked; /* requests this worker has not answered */

	/* What the worker owes, since when (ms, 0: nothing), and the timer
	 * that checks it (kept across workers, freed at stop). */
	uint64_t reset_sent;
	uint64_t counters_sent;
	uint64_t frame_since;
	struct event *watchdog;
	struct bh_device_counters counters;
};

#define COUNTERS_MAX_WAITERS 16

struct bh_devices {
	const struct bh_config *cfg;
	const char *child_dir; /* borrowed: where the workers are */
	struct dev dev[BH_MAX_DEVICES];
	unsigned int n;
	/* To the runner; NULL when no runner listens. */
	bh_devices_send_fn send;
	void *send_arg;
	/* Borrowed for one boot, for replacement workers. */
	const struct bh_guest_mem *mem;
	struct event_base *base;

	/* A counters collection: who waits for it, and its deadline. */
	struct {
		bh_devices_counters_fn fn;
		void *arg;
	} waiters[COUNTERS_MAX_WAITERS];
	unsigned int nwaiters;
	struct event *counters_timer;
	struct bh_kmsg *kmsg; /* borrowed, may be NULL */
	/* Starts the workers (borrowed). NULL only in the tests that build
	 * this file in: then the worker is spawned from here. */
	struct bh_launcher *launcher;
};

static uint64_t now_ms(void)
{
	return bh_now_ns() / 1000000;
}

/* ---- backends, checked and opened before anything starts --------------- */

static int find_binary(const struct bh_devices *d, struct dev *v)
{
	char name[64];

#ifdef BULKHEAD_TESTING
	/* Test builds only, never the installed bulkhead: with
	 * BULKHEAD_TEST_WORKER=ID:PATH the device ID runs PATH as its worker.
	 */
	const char *t = getenv("BULKHEAD_TEST_WORKER");
	size_t n = strlen(v->id);

	if (t && strncmp(t, v->id, n) == 0 && t[n] == ':') {
		snprintf(v->binary, sizeof(v->binary), "%s", t + n + 1);
		return access(v->binary, X_OK) == 0 ? 0 : -ENOENT;
	}
#endif
	snprintf(name, sizeof(name), "bulkhead-dev-%s", kinds[v->kind].name);
	return bh_find_child(name, d->child_dir, v->binary, sizeof(v->binary));
}

int bh_devices_check_binaries(const char *dir, char *err, size_t errlen)
{
	for (size_t i = 0; i < BH_ARRAY_SIZE(kinds); i++) {
		char name[64], path[4096];

		snprintf(name, sizeof(name), "bulkhead-dev-%s", kinds[i].name);
		if (bh_find_child(name, dir, path, sizeof(path)) < 0)
			return bh_errf(err, errlen, "no %s in %s", name, dir);
	}
	return 0;
}

static int open_disk(struct dev *v, char *err, size_t errlen)
{
	const struct bh_disk_config *dc = v->disk;
	int flags =
	    (dc->readonly ? O_RDONLY : O_RDWR) | (dc->direct ? O_DIRECT : 0);
	char how[48];
	uint64_t size = 0;
	struct stat st;
	int fd, r;

	/* Say which access was refused: readonly=on may help. */
	snprintf(how, sizeof(how), "%s%s",
		 dc->readonly ? " to read" : " to write",
		 dc->direct ? " with direct=on" : "");
	fd = bh_backend_open("--disk", dc->path, how, flags,
			     BH_BACKEND_REG | BH_BACKEND_BLK, false, &st, err,
			     errlen);
	if (fd < 0)
		return fd;
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
		r = -errno;
		snprintf(err, errlen, "--disk: cannot get the size of '%s': %s",
			 dc->path, strerror(-r));
		goto fail;
	}
	/* The guest sees whole 512-byte sectors; a tail would be lost. */
	if (size == 0 || size % DISK_SECTOR) {
		r = -EINVAL;
		snprintf(err, errlen,
			 "--disk: '%s' is %llu bytes: the size must be a "
			 "non-zero multiple of 512",
			 dc->path, (unsigned long long)size);
		goto fail;
	}
	v->disk_size = size;
	v->backend[v->nbackend++] = fd;
	return 0;
fail:
	close(fd);
	return r;
}

/* An entropy source is read as a stream: a character device such as
 * /dev/urandom or /dev/hwrng, or a regular file (tests). A FIFO would tie
 * the guest's entropy to whoever writes it and hold up the open. */
static int open_rng(struct dev *v, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	fd = bh_backend_open("--rng", path, NULL, O_RDONLY,
			     BH_BACKEND_CHR | BH_BACKEND_REG, false, &st, err,
			     errlen);
	if (fd < 0)
		return fd;
	v->backend[v->nbackend++] = fd;
	return 0;
}

/* The output is handed to the worker non-blocking: it writes guest output
 * without ever waiting (bulkhead/outbuf.h). */
static int open_console(struct dev *v, const struct bh_config *cfg, char *err,
			size_t errlen)
{
	struct stat st;
	int out, in, r;

	if (cfg->console == BH_CONSOLE_FILE) {
		out = bh_backend_open("--console", cfg->console_path, NULL,
				      O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
				      BH_BACKEND_REG | BH_BACKEND_CHR, true,
				      &st, err, errlen);
		if (out < 0)
			return out;
		v->backend[v->nbackend++] = out;
		return 0;
	}
	/* tty: the worker reads and writes the terminal itself, so that
	 * console bytes never pass through the controller. */
	out = bh_backend_stdout("--console tty", &v->out_shared_flags, err,
				errlen);
	if (out < 0)
		return out;
	v->backend[v->nbackend++] = out;
	r = fcntl(STDIN_FILENO, F_GETFL);
	if (r >= 0 && (r & O_ACCMODE) != O_WRONLY) {
		in = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
		if (in >= 0)
			v->backend[v->nbackend++] = in;
	}
	return 0;
}

/* The TAP queues; the MAC the guest sees, made up (locally administered,
 * unicast) when none was given, and kept for the VM's life. */
static int open_net(struct dev *v, char *err, size_t errlen)
{
	int fds[BH_CONFIG_MAX_NET_PAIRS], r;
	unsigned int pairs = bh_tap_pairs(v->net);

	if (v->net->mac_set) {
		memcpy(v->mac, v->net->mac, sizeof(v->mac));
	} else {
		if (getrandom(v->mac, sizeof(v->mac), 0) != sizeof(v->mac))
			return bh_errf(err, errlen,
				       "--net: no random bytes for a MAC");
		v->mac[0] = (uint8_t)((v->mac[0] & 0xfe) | 0x02);
	}
	r = bh_tap_open(v->net, fds, err, errlen);
	if (r < 0)
		return r;
	for (unsigned int i = 0; i < pairs; i++)
		v->backend[v->nbackend++] = fds[i];
	return 0;
}

static void dev_init(struct bh_devices *d, enum dev_kind kind, const char *id)
{
	struct dev *v = &d->dev[d->n];

	memset(v, 0, sizeof(*v));
	v->devs = d;
	v->index = d->n++;
	v->kind = kind;
	snprintf(v->id, sizeof(v->id), "%s", id);
	for (unsigned int b = 0; b < DEV_MAX_BACKEND; b++)
		v->backend[b] = -1;
	v->out_shared_flags = -1;
	v->pid = -1;
	v->sock = -1;
	v->inflight = -1;
	for (unsigned int q = 0; q < BH_MAX_QUEUES; q++)
		v->kick[q] = v->call[q] = -1;
}

int bh_devices_open(const struct bh_config *cfg, const char *child_dir,
		    struct bh_devices **out, char *err, size_t errlen)
{
	struct bh_devices *d;
	struct dev *v;
	int r = 0;

	d = calloc(1, sizeof(*d));
	if (!d)
		abort();
	d->cfg = cfg;
	d->child_dir = child_dir;
	/* PCI slot order: disks as given, then rng, console, the net devices
	 * as given and vsock. */
	for (unsigned int i = 0; i < cfg->ndisks && r == 0; i++) {
		dev_init(d, DEV_BLK, cfg->disks[i].id);
		d->dev[i].disk = &cfg->disks[i];
		r = open_disk(&d->dev[i], err, errlen);
	}
	if (r == 0 && cfg->rng_source) {
		dev_init(d, DEV_RNG, BH_CONFIG_RNG_ID);
		r = open_rng(&d->dev[d->n - 1], cfg->rng_source, err, errlen);
	}
	if (r == 0 && cfg->console != BH_CONSOLE_OFF) {
		dev_init(d, DEV_CONSOLE, BH_CONFIG_CONSOLE_ID);
		r = open_console(&d->dev[d->n - 1], cfg, err, errlen);
	}
	for (unsigned int i = 0; i < cfg->nnets && r == 0; i++) {
		if (d->n == BH_MAX_DEVICES) {
			r = bh_errf(err, errlen, "more than %u devices",
				    BH_MAX_DEVICES);
			break;
		}
		dev_init(d, DEV_NET, cfg->nets[i].id);
		d->dev[d->n - 1].net = &cfg->nets[i];
		r = open_net(&d->dev[d->n - 1], err, errlen);
	}
	if (r == 0 && cfg->vsock) {
		if (d->n == BH_MAX_DEVICES) {
			r = bh_errf(err, errlen, "more than %u devices",
				    BH_MAX_DEVICES);
		} else {
			dev_init(d, DEV_VSOCK, cfg->vsock->id);
			v = &d->dev[d->n - 1];
			v->vsock = cfg->vsock;
			r = bh_vsock_broker_open(cfg->vsock->socket, &v->broker,
						 err, errlen);
		}
	}
	for (unsigned int i = 0; i < d->n && r == 0; i++) {
		v = &d->dev[i];
		r = find_binary(d, v);
		if (r < 0)
			snprintf(err, errlen,
				 "cannot find bulkhead-dev-%s in %s",
				 kinds[v->kind].name, child_dir);
	}
	if (r < 0) {
		bh_devices_close(d);
		return r;
	}
	*out = d;
	return 0;
}

void bh_devices_set_kmsg(struct bh_devices *d, struct bh_kmsg *k)
{
	if (d)
		d->kmsg = k;
}

void bh_devices_set_launcher(struct bh_devices *d, struct bh_launcher *l)
{
	if (d)
		d->launcher = l;
}

unsigned int bh_devices_count(const struct bh_devices *d)
{
	return d ? d->n : 0;
}

int bh_devices_describe(const struct bh_devices *d, unsigned int i,
			const char **id, const char **type, unsigned int *slot)
{
	static const char *const types[] = {
		[DEV_BLK] = "virtio-blk",     [DEV_CONSOLE] = "virtio-console",
		[DEV_RNG] = "virtio-rng",     [DEV_NET] = "virtio-net",
		[DEV_VSOCK] = "virtio-vsock",
	};

	if (!d || i >= d->n)
		return -ENOENT;
	*id = d->dev[i].id;
	*type = types[d->dev[i].kind];
	*slot = i + 1;
	return 0;
}

void bh_devices_close(struct bh_devices *d)
{
	if (!d)
		return;
	bh_devices_stop(d);
	for (unsigned int i = 0; i < d->n; i++) {
		struct dev *v = &d->dev[i];

		if (v->out_shared_flags >= 0 && v->backend[0] >= 0)
			fcntl(v->backend[0], F_SETFL, v->out_shared_flags);
		for (unsigned int b = 0; b < v->nbackend; b++)
			bh_closep(&v->backend[b]);
		bh_vsock_broker_close(v->broker);
		v->broker = NULL;
	}
	free(d);
}

/* ---- talking to the runner --------------------------------------------- */

static void runner_send(struct bh_devices *d, Bh__MsgType type,
			const ProtobufCMessage *m)
{
	/* A runner that went away is noticed on its own socket, and one that
	 * stopped reading by vm.c's queue. */
	if (d->send && d->send(d->send_arg, (uint16_t)type, m, NULL, 0) < 0)
		bh_debug("cannot relay a device message to the vCPU runner");
}

static void runner_needs_reset(struct dev *v, const char *reason)
{
	Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;

	ref.index = v->index;
	ref.reason = (char *)reason;
	runner_send(v->devs, BH__MSG_TYPE__MSG_VIRTIO_NEEDS_RESET, &ref.base);
}

static void runner_reset_done(struct dev *v)
{
	Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;

	ref.index = v->index;
	v->reset_pending = false;
	runner_send(v->devs, BH__MSG_TYPE__MSG_VIRTIO_RESET_DONE, &ref.base);
}

/* ---- worker processes --------------------------------------------------- */

/* Waits for the worker to exit, SIGKILL after grace_ms; its wait status. */
static int worker_reap(struct dev *v, int grace_ms)
{
	int status;

	if (v->pid <= 0)
		return 0;
	status = bh_reap(v->pid, grace_ms, NULL);
	v->pid = -1;
	return status;
}

static void worker_close(struct dev *v)
{
	if (v->ev) {
		event_free(v->ev);
		v->ev = NULL;
	}
	if (v->watchdog)
		evtimer_del(v->watchdog);
	v->reset_sent = v->counters_sent = v->frame_since = 0;
	bh_frame_reader_reset(&v->rd);
	bh_closep(&v->sock);
}

static void worker_replace(struct dev *v);
static void counters_check(struct bh_devices *d);

/*
 * The worker died or broke the protocol: it goes, and another takes its
 * place (worker_replace). A reset the driver waits for is answered here:
 * the new worker starts with the device reset.
 */
/* Logs how a worker ended (status from worker_reap), naming the system call
 * when its seccomp filter killed it; when is appended. */
static void worker_report(struct dev *v, pid_t pid, int status,
			  const char *when)
{
	char desc[96], what[96];

	snprintf(what, sizeof(what), "worker %s (%s)", v->id,
		 kinds[v->kind].name);
	if (bh_kmsg_report_sigsys(v->devs->kmsg, pid, status, what))
		return;
	bh_err("device %s: worker %s%s", v->id,
	       bh_describe_status(status, desc, sizeof(desc)), when);
}

static void worker_fail(struct dev *v, const char *why, bool kill_it)
{
	pid_t pid = v->pid;
	int status;

	if (kill_it && v->pid > 0)
		kill(v->pid, SIGKILL);
	status = worker_reap(v, WORKER_EXIT_TIMEOUT);
	worker_close(v);
	if (why)
		bh_err("device %s: worker %s; killed it", v->id, why);
	else
		worker_report(v, pid, status, "");
	v->ws = WK_DEAD;
	if (v->counters_pending) {
		v->counters_pending = false;
		counters_check(v->devs);
	}
	if (v->reset_pending) {
		v->active = false;
		runner_reset_done(v);
	}
	worker_replace(v);
}

/* A worker's socket was full for WORKER_SEND_TIMEOUT, or is gone. */
static void worker_send_failed(struct dev *v, int r)
{
	char why[96];

	if (r == -ETIMEDOUT)
		snprintf(why, sizeof(why), "left its messages unread for %d ms",
			 WORKER_SEND_TIMEOUT);
	else
		snprintf(why, sizeof(why), "cannot be reached: %s",
			 strerror(-r));
	worker_fail(v, why, true);
}

/* A worker that owes an answer, or the rest of a frame, for longer than
 * WORKER_ANSWER_TIMEOUT is stuck: a reset the guest waits for would hang
 * its driver for ever. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct dev *v = arg;
	const struct {
		uint64_t since;
		const char *what;
	} owed[] = {
		{ v->reset_pending ? v->reset_sent : 0,
		  "did not answer a device reset" },
		{ v->counters_asked ? v->counters_sent : 0,
		  "did not answer a counters request" },
		{ v->frame_since, "left a frame unfinished" },
	};
	uint64_t now = now_ms(), next = 0;
	struct timeval tv;
	char why[96];

	for (size_t i = 0; i < BH_ARRAY_SIZE(owed); i++) {
		uint64_t left;

		if (!owed[i].since)
			continue;
		if (now - owed[i].since >= WORKER_ANSWER_TIMEOUT) {
			snprintf(why, sizeof(why), "%s for %d ms", owed[i].what,
				 WORKER_ANSWER_TIMEOUT);
			worker_fail(v, why, true);
			return;
		}
		left = WORKER_ANSWER_TIMEOUT - (now - owed[i].since);
		if (!next || left < next)
			next = left;
	}
	if (next) {
		tv.tv_sec = (time_t)(next / 1000);
		tv.tv_usec = (suseconds_t)(next % 1000) * 1000;
		evtimer_add(v->watchdog, &tv);
	}
}

/* Something is owed from now on: the timer runs if it did not. */
static void watchdog_arm(struct dev *v)
{
	struct timeval tv = { WORKER_ANSWER_TIMEOUT / 1000,
			      (WORKER_ANSWER_TIMEOUT % 1000) * 1000 };

	if (v->watchdog && !evtimer_pending(v->watchdog, NULL))
		evtimer_add(v->watchdog, &tv);
}

static int worker_spawn(struct dev *v, const struct bh_config *cfg)
{
	char name[64];
	char *argv[] = { name,
			 "--id",
			 v->id,
			 "--log-level",
			 (char *)bh_log_level_name(cfg->log_level),
			 NULL,
			 NULL,
			 NULL };
	struct bh_spawn_fd fds[1];
	int sv[2] = { -1, -1 }, r;

	snprintf(name, sizeof(name), "bulkhead-dev-%s", kinds[v->kind].name);
	/* The worker opens / once sandboxed, which must get it killed. */
	if (cfg->self_test == BH_SELF_TEST_WORKER) {
		argv[5] = "--selftest-open";
		argv[6] = "/";
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fds[0].src = sv[1];
	fds[0].dst = BH_CHILD_FD_CONTROL;
	/* The launcher builds the same command line and namespaces. */
	if (v->devs->launcher)
		r = bh_launcher_spawn(v->devs->launcher, kinds[v->kind].launch,
				      v->id, sv[1], &v->pid);
	else
		/* A PID namespace of its own where the host allows it;
		 * strict makes it a condition, as it does the worker's other
		 * namespaces. */
		r = bh_spawn_ns(
		    v->binary, argv, fds, 1,
		    BH_SPAWN_PIDNS |
			(cfg->strict_sandbox ? BH_SPAWN_PIDNS_REQUIRED : 0),
		    &v->pid, NULL);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		v->pid = -1;
		return r;
	}
	v->sock = sv[0];
	v->counters_asked = 0;
	bh_frame_reader_init(&v->rd, BH_FRAME_MAX_BODY);
	return 0;
}

/* ---- what a worker may send --------------------------------------------- */

static int h_w_ready(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__WorkerReady *r = (const Bh__WorkerReady *)m;
	const Bh__VirtioDevice *dev = r->device;
	struct dev *v = ctx;

	/* Everything here reaches the runner's transport: bound it all. */
	if (!dev || dev->device_type != kinds[v->kind].virtio_id ||
	    dev->num_queues < 1 || dev->num_queues > BH_MAX_QUEUES ||
	    (v->disk && dev->num_queues != v->disk->num_queues) ||
	    /* rx and tx per pair, and the control queue */
	    (v->net && dev->num_queues != 2 * bh_tap_pairs(v->net) + 1) ||
	    dev->max_queue_size < 2 ||
	    dev->max_queue_size > BH_MAX_QUEUE_SIZE ||
	    (dev->max_queue_size & (dev->max_queue_size - 1)) ||
	    dev->config.len > BH_VIRTIO_CONFIG_MAX)
		return -EINVAL;
	v->features = dev->device_features;
	v->nq = dev->num_queues;
	v->qsize = dev->max_queue_size;
	v->config_len = dev->config.len;
	if (dev->config.len)
		memcpy(v->config, dev->config.data, dev->config.len);
	v->ws = WK_READY;
	return 0;
}

static int h_w_reset_done(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	struct dev *v = ctx;

	/* Only an answer to our request; anything else would confuse the
	 * runner's view of the device. */
	if (!v->reset_pending)
		return -EPROTO;
	runner_reset_done(v);
	return 0;
}

static int h_w_config_update(void *ctx, const ProtobufCMessage *m,
			     struct bh_frame *f)
{
	const Bh__VirtioConfigUpdate *u = (const Bh__VirtioConfigUpdate *)m;
	Bh__VirtioConfigUpdate out = BH__VIRTIO_CONFIG_UPDATE__INIT;
	struct dev *v = ctx;

	if (u->config.len > BH_VIRTIO_CONFIG_MAX)
		return -EMSGSIZE;
	memcpy(v->config, u->config.data, u->config.len);
	v->config_len = u->config.len;
	out.index = v->index;
	out.config = u->config;
	out.notify = u->notify;
	runner_send(v->devs, BH__MSG_TYPE__MSG_VIRTIO_CONFIG_UPDATE, &out.base);
	return 0;
}

static int h_w_needs_reset(void *ctx, const ProtobufCMessage *m,
			   struct bh_frame *f)
{
	const Bh__VirtioDeviceRef *ref = (const Bh__VirtioDeviceRef *)m;
	struct dev *v = ctx;
	char reason[160];

	/* The reason is the worker's text, maybe the guest's doing: cut it
	 * short and keep it printable before it reaches the log. */
	snprintf(reason, sizeof(reason), "%s",
		 ref->reason && ref->reason[0] ? ref->reason : "no reason");
	for (char *p = reason; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	bh_log_ratelimited(BH_LOG_WARN, "device %s: needs reset: %s", v->id,
			   reason);
	runner_needs_reset(v, reason);
	return 0;
}

/* Ends the collection under way: every waiter gets what has arrived. */
static void counters_finish(struct bh_devices *d)
{
	struct bh_device_counters got[BH_MAX_DEVICES];
	unsigned int n = 0, nw = d->nwaiters;
	struct {
		bh_devices_counters_fn fn;
		void *arg;
	} w[COUNTERS_MAX_WAITERS];

	if (nw == 0)
		return;
	if (d->counters_timer)
		event_del(d->counters_timer);
	for (unsigned int i = 0; i < d->n; i++) {
		struct dev *v = &d->dev[i];

		if (!v->counters_pending && v->counters.id)
			got[n++] = v->counters;
		v->counters_pending = false;
		v->counters.id = NULL;
	}
	/* A waiter may start the next collection from its callback. */
	memcpy(w, d->waiters, nw * sizeof(w[0]));
	d->nwaiters = 0;
	for (unsigned int i = 0; i < nw; i++)
		w[i].fn(w[i].arg, got, n);
}

static void counters_check(struct bh_devices *d)
{
	for (unsigned int i = 0; i < d->n; i++)
		if (d->dev[i].counters_pending)
			return;
	counters_finish(d);
}

static void on_counters_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct bh_devices *d = arg;

	bh_warn("devices' counters: not every worker answered in time");
	counters_finish(d);
}

int bh_devices_counters(struct bh_devices *d, int timeout_ms,
			bh_devices_counters_fn done, void *arg)
{
	Bh__Empty req = BH__EMPTY__INIT;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	unsigned int asked = 0;
	int r;

	if (d->nwaiters == COUNTERS_MAX_WAITERS)
		return -EBUSY;
	if (d->nwaiters > 0) {
		d->waiters[d->nwaiters].fn = done;
		d->waiters[d->nwaiters++].arg = arg;
		return 0;
	}
	if (!d->base)
		return -ENOTCONN;
	if (!d->counters_timer) {
		d->counters_timer =
		    evtimer_new(d->base, on_counters_timeout, d);
		if (!d->counters_timer)
			return -ENOMEM;
	}
	for (unsigned int i = 0; i < d->n; i++) {
		struct dev *v = &d->dev[i];

		v->counters.id = NULL;
		v->counters_pending = false;
		if (v->ws != WK_READY || v->sock < 0)
			continue;
		r = bh_frame_send_timeout(
		    v->sock, BH__MSG_TYPE__MSG_COUNTERS_REQUEST, &req.base,
		    NULL, 0, WORKER_SEND_TIMEOUT);
		if (r < 0) {
			worker_send_failed(v, r);
			continue;
		}
		v->counters_pending = true;
		if (v->counters_asked++ == 0)
			v->counters_sent = now_ms();
		watchdog_arm(v);
		asked++;
	}
	if (asked == 0)
		return -ENOTCONN;
	d->waiters[0].fn = done;
	d->waiters[0].arg = arg;
	d->nwaiters = 1;
	evtimer_add(d->counters_timer, &tv);
	return 0;
}

static int h_w_counters(void *ctx, const ProtobufCMessage *m,
			struct bh_frame *f)
{
	const Bh__Counters *c = (const Bh__Counters *)m;
	struct dev *v = ctx;
	unsigned int n = 0;

	/* Never more answers than requests; a late one is dropped. */
	if (v->counters_asked == 0)
		return -EPROTO;
	/* Still owing older ones: it answers, so its time starts again. */
	if (--v->counters_asked)
		v->counters_sent = now_ms();
	if (!v->counters_pending)
		return 0;
	for (size_t i = 0; i < c->n_counters && n < BH_DEVICES_MAX_COUNTERS;
	     i++) {
		if (!c->counters[i]->name || !c->counters[i]->name[0] ||
		    strlen(c->counters[i]->name) > BH_DEVICES_COUNTER_NAME_MAX)
			continue;
		snprintf(v->counters.c[n].name, sizeof(v->counters.c[n].name),
			 "%s", c->counters[i]->name);
		v->counters.c[n++].value = c->counters[i]->value;
	}
	v->counters.n = n;
	v->counters.id = v->id;
	v->counters_pending = false;
	counters_check(v->devs);
	return 0;
}

static int h_w_error(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__Error *e = (const Bh__Error *)m;
	struct dev *v = ctx;

	bh_log_ratelimited(BH_LOG_WARN, "device %s: worker reported: %.160s",
			   v->id, e->message);
	return 0;
}

/* The vsock worker asks for a connection to <socket>_<port>: the controller
 * connects for it (the worker has no socket call) and hands the fd over, or
 * says why not. The port is the guest's choice; the path is ours. */
static int h_w_vsock_connect(void *ctx, const ProtobufCMessage *m,
			     struct bh_frame *f)
{
	const Bh__VsockConnect *c = (const Bh__VsockConnect *)m;
	Bh__VsockConnected out = BH__VSOCK_CONNECTED__INIT;
	struct dev *v = ctx;
	int fd = -1, r;

	if (v->kind != DEV_VSOCK || !v->broker)
		return -EPROTO;
	r = bh_vsock_broker_connect(v->broker, c->port, &fd);
	out.token = c->token;
	out.error = r < 0 ? -r : 0;
	r = bh_frame_send_timeout(v->sock, BH__MSG_TYPE__MSG_VSOCK_CONNECTED,
				  &out.base, fd >= 0 ? &fd : NULL,
				  fd >= 0 ? 1 : 0, WORKER_SEND_TIMEOUT);
	bh_closep(&fd);
	if (r < 0)
		worker_send_failed(v, r);
	return 0;
}

static const struct bh_handler worker_msgs[] = {
	{ BH__MSG_TYPE__MSG_VSOCK_CONNECT, BH_STATE(WK_READY), 0,
	  &bh__vsock_connect__descriptor, h_w_vsock_connect, "vsock-connect" },
	{ BH__MSG_TYPE__MSG_WORKER_READY, BH_STATE(WK_SETUP), 0,
	  &bh__worker_ready__descriptor, h_w_ready, "worker-ready" },
	{ BH__MSG_TYPE__MSG_DEVICE_RESET_DONE, BH_STATE(WK_READY), 0,
	  &bh__virtio_device_ref__descriptor, h_w_reset_done,
	  "device-reset-done" },
	{ BH__MSG_TYPE__MSG_DEVICE_CONFIG_UPDATE, BH_STATE(WK_READY), 0,
	  &bh__virtio_config_update__descriptor, h_w_config_update,
	  "device-config-update" },
	{ BH__MSG_TYPE__MSG_DEVICE_NEEDS_RESET, BH_STATE(WK_READY), 0,
	  &bh__virtio_device_ref__descriptor, h_w_needs_reset,
	  "device-needs-reset" },
	{ BH__MSG_TYPE__MSG_COUNTERS, BH_STATE(WK_READY), 0,
	  &bh__counters__descriptor, h_w_counters, "counters" },
	{ BH__MSG_TYPE__MSG_ERROR, BH_STATE(WK_SETUP) | BH_STATE(WK_READY), 0,
	  &bh__error__descriptor, h_w_error, "error" },
};

/* One frame from a worker; <0 (logged) means the worker misbehaved. */
static int worker_dispatch(struct dev *v, struct bh_frame *f, char *why,
			   size_t whylen)
{
	const char *name = NULL;
	uint16_t type = f->type;
	int r;

	r = bh_dispatch(worker_msgs, BH_ARRAY_SIZE(worker_msgs), v->ws, f, v,
			&name);
	if (r < 0)
		snprintf(why, whylen, "sent a bad message (%s, type %u): %s",
			 name ? name : "unknown", type, strerror(-r));
	return r;
}

/* Whether the worker has exited (it is not reaped here), waiting at most
 * ms: the loop stands still meanwhile. */
static bool worker_exited(struct dev *v, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	siginfo_t si;

	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)v->pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    si.si_pid == v->pid)
			return true;
		if (now_ms() >= end)
			return false;
		usleep(5000);
	}
}

static void on_worker(evutil_socket_t fd, short what, void *arg)
{
	struct dev *v = arg;
	struct bh_frame f;
	char why[160];
	int r;

	/* The event stays active while frames wait: the rest come on the
	 * next pass of the loop, after everything else that is ready. */
	for (unsigned int n = 0; n < WORKER_FRAMES_PER_WAKE; n++) {
		r = bh_frame_read(v->sock, &v->rd, &f);
		if (r == 0) {
			/* Half a frame: the rest must come in time. */
			if (v->rd.hdr_got > 0 && !v->frame_since) {
				v->frame_since = now_ms();
				watchdog_arm(v);
			}
			return;
		}
		if (r < 0)
			break;
		v->frame_since = 0;
		if (worker_dispatch(v, &f, why, sizeof(why)) < 0) {
			worker_fail(v, why, true);
			return;
		}
	}
	if (r > 0)
		return;
	if (r == -EPIPE || r == -ECONNRESET) {
		/* A worker that closed its socket has ended or is ending; one
		 * that lives on is not waited for. */
		if (v->pid > 0 && !worker_exited(v, WORKER_EOF_GRACE))
			worker_fail(v, "closed its connection and did not exit",
				    true);
		else
			worker_fail(v, NULL, false);
		return;
	}
	snprintf(why, sizeof(why), "connection: %s", strerror(-r));
	worker_fail(v, why, true);
}

static int worker_setup(struct dev *v, const struct bh_guest_mem *mem)
{
	const struct bh_mem_layout *l = &mem->layout;
	Bh__WorkerSetup s = BH__WORKER_SETUP__INIT;
	Bh__BlkSetup blk = BH__BLK_SETUP__INIT;
	Bh__ConsoleSetup con = BH__CONSOLE_SETUP__INIT;
	Bh__RngSetup rng = BH__RNG_SETUP__INIT;
	Bh__NetSetup net = BH__NET_SETUP__INIT;
	Bh__VsockSetup vsock = BH__VSOCK_SETUP__INIT;
	Bh__MemRegion regs[BH_MAX_RAM_REGIONS];
	Bh__MemRegion *ptrs[BH_MAX_RAM_REGIONS];
	int fds[1 + DEV_MAX_BACKEND];

	for (unsigned int i = 0; i < l->nregions; i++) {
		bh__mem_region__init(&regs[i]);
		regs[i].guest_phys = l->regions[i].guest_phys;
		regs[i].size = l->regions[i].size;
		regs[i].memfd_offset = l->regions[i].memfd_offset;
		ptrs[i] = &regs[i];
	}
	s.id = v->id;
	s.n_regions = l->nregions;
	s.regions = ptrs;
	s.memfd_size = l->ram_size;
	s.backend_case = kinds[v->kind].backend;
	s.strict_sandbox = v->devs->cfg->strict_sandbox;
	switch (v->kind) {
	case DEV_BLK:
		blk.readonly = v->disk->readonly;
		blk.direct = v->disk->direct;
		blk.num_queues = v->disk->num_queues;
		blk.queue_size = v->disk->queue_size;
		blk.serial = v->disk->serial;
		blk.size = v->disk_size;
		s.blk = &blk;
		break;
	case DEV_CONSOLE:
		con.has_input = v->nbackend > 1;
		if (v->devs->cfg->console == BH_CONSOLE_FILE) {
			con.max_size = v->devs->cfg->console_max_size;
			con.stop_when_full =
			    v->devs->cfg->console_on_full == BH_OUT_FULL_STOP;
		}
		s.console = &con;
		break;
	case DEV_RNG:
		s.rng = &rng;
		break;
	case DEV_NET:
		net.mac.data = v->mac;
		net.mac.len = sizeof(v->mac);
		net.mtu = v->net->mtu;
		net.queue_pairs = bh_tap_pairs(v->net);
		net.queue_size = v->net->queue_size;
		s.net = &net;
		break;
	case DEV_VSOCK:
		vsock.cid = v->vsock->cid;
		vsock.max_connections = BH_CONFIG_VSOCK_MAX_CONNS;
		s.vsock = &vsock;
		break;
	}
	fds[0] = mem->memfd;
	for (unsigned int b = 0; b < v->nbackend; b++)
		fds[1 + b] = v->backend[b];
	return bh_frame_send(v->sock, BH__MSG_TYPE__MSG_WORKER_SETUP, &s.base,
			     fds, 1 + v->nbackend);
}

/* Starts one worker and takes it to READY. */
static int worker_start(struct dev *v, const struct bh_config *cfg,
			const struct bh_guest_mem *mem)
{
	struct bh_frame f;
	char why[160] = "";
	int r;

	v->reset_pending = false;
	r = worker_spawn(v, cfg);
	if (r < 0) {
		bh_err("device %s: cannot start %s: %s", v->id, v->binary,
		       strerror(-r));
		return r;
	}
	v->ws = WK_SETUP;
	r = bh_hello_send(v->sock, "controller");
	if (r == 0)
		r = bh_frame_read_timeout(v->sock, &v->rd, &f,
					  WORKER_SETUP_TIMEOUT);
	if (r == 0) {
		char role[32];

		snprintf(role, sizeof(role), "dev-%s", kinds[v->kind].name);
		r = bh_hello_check(&f, role);
		bh_frame_release(&f);
	}
	if (r == 0)
		r = worker_setup(v, mem);
	if (r == 0)
		r = bh_frame_read_timeout(v->sock, &v->rd, &f,
					  WORKER_SETUP_TIMEOUT);
	if (r == 0)
		r = worker_dispatch(v, &f, why, sizeof(why));
	if (r == 0 && v->ws != WK_READY) {
		r = -EPROTO;
		snprintf(why, sizeof(why), "did not get ready");
	}
	if (r < 0) {
		pid_t pid = v->pid;
		int status;

		if (r != -EPIPE && r != -ECONNRESET)
			kill(v->pid, SIGKILL);
		status = worker_reap(v, WORKER_EXIT_TIMEOUT);
		worker_close(v);
		v->ws = WK_NONE;
		if (r == -EPIPE || r == -ECONNRESET)
			worker_report(v, pid, status, " during set-up");
		else
			bh_err("device %s: worker set-up failed: %s", v->id,
			       why[0] ? why : strerror(-r));
		return r;
	}
	bh_debug("device %s: worker ready (pid %d): %u queues of %u, "
		 "features 0x%llx, config %zu bytes",
		 v->id, (int)v->pid, v->nq, v->qsize,
		 (unsigned long long)v->features, v->config_len);
	return 0;
}

/* A host process connected to the vsock device's socket: the connection
 * goes to the worker, which reads its CONNECT line. Without a worker to take
 * it, it is closed (the peer sees EOF). */
static void on_vsock_conn(void *arg, int fd)
{
	struct dev *v = arg;
	Bh__VsockHostConn msg = BH__VSOCK_HOST_CONN__INIT;
	int r;

	if (v->ws == WK_READY && v->sock >= 0) {
		r = bh_frame_send_timeout(
		    v->sock, BH__MSG_TYPE__MSG_VSOCK_HOST_CONN, &msg.base, &fd,
		    1, WORKER_SEND_TIMEOUT);
		if (r < 0)
			worker_send_failed(v, r);
	}
	close(fd);
}

/* From READY on, the worker's socket is watched in the event loop. */
static int worker_watch(struct dev *v)
{
	if (fcntl(v->sock, F_SETFL, fcntl(v->sock, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	if (!v->watchdog)
		v->watchdog = evtimer_new(v->devs->base, on_watchdog, v);
	if (!v->watchdog)
		return -ENOMEM;
	v->ev = event_new(v->devs->base, v->sock, EV_READ | EV_PERSIST,
			  on_worker, v);
	if (!v->ev || event_add(v->ev, NULL) < 0) {
		bh_err("device %s: cannot watch the worker", v->id);
		return -ENOMEM;
	}
	return 0;
}

/* Sends the driver's activation to the worker, with the in-flight memfd;
 * resume when a previous worker served these rings. */
static int worker_activate(struct dev *v, bool resume)
{
	Bh__DeviceActivate act = BH__DEVICE_ACTIVATE__INIT;
	Bh__VirtQueue *qs[BH_MAX_QUEUES];
	int fds[2 * BH_MAX_QUEUES + 1];
	size_t n = 0;

	for (unsigned int i = 0; i < v->nqueues; i++) {
		Bh__VirtQueue *q = &v->queues[i];

		if (!q->enabled)
			continue;
		qs[n] = q;
		fds[2 * n] = v->kick[q->index];
		fds[2 * n + 1] = v->call[q->index];
		n++;
	}
	fds[2 * n] = v->inflight;
	act.driver_features = v->driver_features;
	act.n_queues = n;
	act.queues = qs;
	act.inflight_size = v->inflight_size;
	act.resume = resume;
	act.failed = v->failed;
	return bh_frame_send_timeout(v->sock, BH__MSG_TYPE__MSG_DEVICE_ACTIVATE,
				     &act.base, fds, (unsigned int)(2 * n + 1),
				     WORKER_SEND_TIMEOUT);
}

/* Restarts within the last window, after forgetting older ones. Every
 * entry of the ring counts (it holds the latest restarts, and at least max
 * of them), not only its first max: those are the oldest. */
static bool restart_allowed(struct dev *v, uint64_t now)
{
	unsigned int max = v->devs->cfg->max_restarts, recent = 0;
	unsigned int n = v->nrestarts < BH_CONFIG_MAX_RESTARTS
			     ? v->nrestarts
			     : BH_CONFIG_MAX_RESTARTS;

	if (max > BH_CONFIG_MAX_RESTARTS)
		max = BH_CONFIG_MAX_RESTARTS;
	for (unsigned int i = 0; i < n; i++)
		if (now - v->restarts[i] < RESTART_WINDOW_MS)
			recent++;
	return recent < max;
}

/*
 * A worker is gone during a boot. Its replacement takes up the rings where
 * the dead one left them, using the in-flight records, so that the driver
 * sees every request it made completed:
 * - with --restart-devices on, and fewer than max restarts in the last
 *   minute, a worker like the first, which finishes what was in flight;
 * - otherwise, one that completes every request with the device's error
 *   (and the guest is told the device needs a reset), for the rest of the
 *   boot. If that one dies too, the device is left dead.
 */
static void worker_replace(struct dev *v)
{
	struct bh_devices *d = v->devs;
	uint64_t t0 = now_ms();
	uint64_t features = v->features;
	unsigned int nq = v->nq, qsize = v->qsize;
	bool restart;
	int r;

	if (!d->mem || !d->base)
		return; /* not during a boot */
	if (v->failed) {
		bh_err("device %s: the worker that failed its requests died "
		       "too: the device is dead until the VM reboots",
		       v->id);
		runner_needs_reset(v, "device worker failed");
		return;
	}
	restart = d->cfg->restart_devices && restart_allowed(v, t0);
	if (d->cfg->restart_devices && !restart)
		bh_err("device %s: restart limit reached (%u in the last "
		       "minute)",
		       v->id, d->cfg->max_restarts);
	if (!restart)
		v->failed = true;
	r = worker_start(v, d->cfg, d->mem);
	if (r == 0 &&
	    (v->features != features || v->nq != nq || v->qsize != qsize)) {
		bh_err("device %s: the new worker offers another device",
		       v->id);
		r = -EPROTO;
	}
	if (r == 0)
		r = worker_watch(v);
	if (r == 0 && v->active)
		r = worker_activate(v, true);
	if (r < 0) {
		if (v->pid > 0)
			kill(v->pid, SIGKILL);
		worker_reap(v, WORKER_EXIT_TIMEOUT);
		worker_close(v);
		v->ws = WK_DEAD;
		bh_err("device %s: no worker could replace the dead one: the "
		       "device is dead until the VM reboots",
		       v->id);
		runner_needs_reset(v, "device worker failed");
		return;
	}
	if (restart) {
		v->restarts[v->nrestarts++ % BH_CONFIG_MAX_RESTARTS] = t0;
		bh_warn("device %s: restarted its worker in %llu ms (pid %d)",
			v->id, (unsigned long long)(now_ms() - t0),
			(int)v->pid);
	} else {
		bh_warn("device %s: replaced its worker by one that fails "
			"every request (pid %d); the device works again after "
			"the VM reboots",
			v->id, (int)v->pid);
		runner_needs_reset(v, "device worker failed");
	}
}

int bh_devices_start(struct bh_devices *d, const struct bh_guest_mem *mem,
		     struct event_base *base)
{
	struct dev *v;
	int r = 0;

	d->mem = mem;
	d->base = base;
	for (unsigned int i = 0; i < d->n; i++) {
		v = &d->dev[i];
		v->failed = false;
		v->active = false;
		v->nrestarts = 0;
		r = worker_start(v, d->cfg, mem);
		if (r < 0)
			goto fail;
		for (unsigned int q = 0; q < v->nq; q++) {
			v->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			v->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (v->kick[q] < 0 || v->call[q] < 0) {
				r = -errno;
				bh_err("device %s: cannot create eventfds: %s",
				       v->id, strerror(-r));
				goto fail;
			}
		}
		r = worker_watch(v);
		if (r < 0)
			goto fail;
		if (v->broker) {
			r = bh_vsock_broker_start(v->broker, base,
						  on_vsock_conn, v);
			if (r < 0) {
				bh_err("device %s: cannot accept on its "
				       "socket: %s",
				       v->id, strerror(-r));
				goto fail;
			}
		}
	}
	return 0;
fail:
	bh_devices_stop(d);
	return r;
}

int bh_devices_attach(struct bh_devices *d, bh_devices_send_fn send, void *arg)
{
	for (unsigned int i = 0; i < d->n; i++) {
		Bh__RunnerAddDevice add = BH__RUNNER_ADD_DEVICE__INIT;
		Bh__VirtioDevice dev = BH__VIRTIO_DEVICE__INIT;
		struct dev *v = &d->dev[i];
		int fds[2 * BH_MAX_QUEUES];
		int r;

		dev.index = v->index;
		dev.device_type = kinds[v->kind].virtio_id;
		dev.pci_slot = v->index + 1;
		dev.device_features = v->features;
		dev.num_queues = v->nq;
		dev.max_queue_size = v->qsize;
		dev.config.data = v->config;
		dev.config.len = v->config_len;
		dev.id = v->id;
		add.device = &dev;
		for (unsigned int q = 0; q < v->nq; q++) {
			fds[q] = v->kick[q];
			fds[v->nq + q] = v->call[q];
		}
		r = send(arg, BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE, &add.base,
			 fds, 2 * v->nq);
		if (r < 0) {
			bh_err("device %s: cannot add it to the VM: %s", v->id,
			       strerror(-r));
			return r;
		}
	}
	d->send = send;
	d->send_arg = arg;
	return 0;
}

void bh_devices_stop(struct bh_devices *d)
{
	Bh__Quit quit = BH__QUIT__INIT;
	uint64_t deadline = now_ms() + WORKER_EXIT_TIMEOUT;
	struct dev *v;
	unsigned int left;

	if (!d)
		return;
	for (unsigned int i = 0; i < d->n; i++)
		d->dev[i].counters_pending = false;
	counters_finish(d);
	if (d->counters_timer) {
		event_free(d->counters_timer);
		d->counters_timer = NULL;
	}
	d->send = NULL;
	d->send_arg = NULL;
	d->mem = NULL;
	d->base = NULL;
	for (unsigned int i = 0; i < d->n; i++) {
		v = &d->dev[i];
		/* No waiting for room: a worker that does not read is killed.
		 */
		if (v->sock >= 0 && v->pid > 0 &&
		    bh_frame_send_timeout(v->sock, BH__MSG_TYPE__MSG_QUIT,
					  &quit.base, NULL, 0, 0) < 0)
			kill(v->pid, SIGKILL);
	}
	/* One grace period for all of them, not one each. */
	do {
		left = 0;
		for (unsigned int i = 0; i < d->n; i++) {
			v = &d->dev[i];
			if (v->pid > 0 && waitpid(v->pid, NULL, WNOHANG) == 0)
				left++;
			else
				v->pid = -1;
		}
		if (left)
			usleep(5000);
	} while (left && now_ms() < deadline);
	for (unsigned int i = 0; i < d->n; i++) {
		v = &d->dev[i];
		if (v->pid > 0) {
			bh_warn("device %s: worker did not exit; killing it",
				v->id);
			worker_reap(v, 0);
		}
		worker_close(v);
		if (v->broker)
			bh_vsock_broker_stop(v->broker);
		for (unsigned int q = 0; q < BH_MAX_QUEUES; q++) {
			bh_closep(&v->kick[q]);
			bh_closep(&v->call[q]);
		}
		bh_closep(&v->inflight);
		if (v->watchdog) {
			event_free(v->watchdog);
			v->watchdog = NULL;
		}
		v->active = false;
		v->ws = WK_NONE;
		v->reset_pending = false;
	}
}

/* ---- relays from the runner --------------------------------------------- */

/* A fresh memfd for the workers' in-flight records, sealed at its size so
 * that no worker can shrink it under another's mapping. */
static int inflight_create(struct dev *v)
{
	uint64_t size = BH_INFLIGHT_TOTAL(v->nq, v->qsize);
	int fd;

	bh_closep(&v->inflight);
	fd = memfd_create("bulkhead-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
		0) {
		int r = -errno;

		close(fd);
		return r;
	}
	v->inflight = fd;
	v->inflight_size = size;
	return 0;
}

int bh_devices_activate(struct bh_devices *d, const Bh__VirtioActivate *a)
{
	uint32_t seen = 0;
	struct dev *v;
	int r;

	if (a->index >= d->n)
		return -EINVAL;
	v = &d->dev[a->index];
	if (a->n_queues > v->nq)
		return -EINVAL;
	for (size_t i = 0; i < a->n_queues; i++) {
		const Bh__VirtQueue *q = a->queues[i];

		if (q->index >= v->nq || (seen & (1u << q->index)))
			return -EINVAL;
		seen |= 1u << q->index;
	}
	/* Kept for a replacement worker: what the driver set up. */
	v->driver_features = a->driver_features;
	v->nqueues = (unsigned int)a->n_queues;
	for (size_t i = 0; i < a->n_queues; i++) {
		bh__virt_queue__init(&v->queues[i]);
		v->queues[i].index = a->queues[i]->index;
		v->queues[i].size = a->queues[i]->size;
		v->queues[i].desc = a->queues[i]->desc;
		v->queues[i].avail = a->queues[i]->avail;
		v->queues[i].used = a->queues[i]->used;
		v->queues[i].enabled = a->queues[i]->enabled;
	}
	r = inflight_create(v);
	if (r < 0) {
		bh_err("device %s: cannot create its in-flight memfd: %s",
		       v->id, strerror(-r));
		return r;
	}
	v->active = true;
	if (v->ws != WK_READY) {
		runner_needs_reset(v, "device worker failed");
		return 0;
	}
	r = worker_activate(v, false);
	if (r < 0)
		worker_send_failed(v, r);
	else
		bh_debug("device %s: activated, %u queues, features 0x%llx",
			 v->id, v->nqueues,
			 (unsigned long long)a->driver_features);
	return 0;
}

int bh_devices_reset(struct bh_devices *d, const Bh__VirtioDeviceRef *ref)
{
	Bh__VirtioDeviceRef msg = BH__VIRTIO_DEVICE_REF__INIT;
	struct dev *v;
	int r;

	if (ref->index >= d->n)
		return -EINVAL;
	v = &d->dev[ref->index];
	v->reset_pending = true;
	v->active = false;
	if (v->ws != WK_READY) {
		runner_reset_done(v);
		return 0;
	}
	msg.index = v->index;
	r = bh_frame_send_timeout(v->sock, BH__MSG_TYPE__MSG_DEVICE_RESET,
				  &msg.base, NULL, 0, WORKER_SEND_TIMEOUT);
	if (r < 0) {
		worker_send_failed(v, r);
		return 0;
	}
	v->reset_sent = now_ms();
	watchdog_arm(v);
	return 0;
}

int bh_devices_config_write(struct bh_devices *d,
			    const Bh__VirtioConfigWrite *w)
{
	struct dev *v;
	int r;

	if (w->index >= d->n)
		return -EINVAL;
	v = &d->dev[w->index];
	if (v->ws != WK_READY)
		return 0;
	r = bh_frame_send_timeout(v->sock,
				  BH__MSG_TYPE__MSG_DEVICE_CONFIG_WRITE,
				  &w->base, NULL, 0, WORKER_SEND_TIMEOUT);
	if (r < 0)
		worker_send_failed(v, r);
	return 0;
}
