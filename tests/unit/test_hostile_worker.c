/* The controller's side of the device workers (controller/devices.c,
 * supervise.c and the device types, built into this test with shorter
 * timeouts) against a hostile worker (hostile_worker.c) on disk "<mode>"
 * beside a real rng worker: each way a compromised worker can break the
 * protocol ends with that worker killed and reaped, every fd it sent closed,
 * a log line naming the device and why, the runner told that the device
 * needs a reset, and the event loop, the other device and the device's next
 * worker serving on. */
#include <dirent.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <bulkhead/frame.h>
#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "config.h"
#include "devices.h"
#include "guestmem.h"
#include "layout.h"

#define IMG_SIZE (1u << 20)
#define RAM_SIZE (16ULL << 20)
#define HOSTILE	 0 /* the hostile disk's device index */

struct hx {
	const char *mode;
	char id[BH_CONFIG_ID_MAX + 1]; /* mode.pid */
	char img[64];
	char marker[96];
	struct bh_config cfg;
	struct bh_devices *d;
	struct bh_guest_mem mem;
	struct event_base *base;
	struct event *tick;
	int runner[2]; /* the controller's end, the fake runner's end */
	struct bh_frame_reader rrd;
	unsigned int needs_reset, reset_done; /* runner got, for HOSTILE */
	int log;			      /* the controller's stderr */
	int saved_err;
	int fds0;      /* before anything started */
	int fds_up;    /* with every worker running */
	pid_t pid;     /* the first, hostile worker */
	int start_ret; /* bh_devices_start */
};

/* dirty.c is built in for devices.c; its bh_vm_* side, which reaches the
 * devices through vm.c, is not used here. */
struct bh_vm;
struct bh_devices *bh_vm_devices(struct bh_vm *vm);
struct bh_devices *bh_vm_devices(struct bh_vm *vm)
{
	(void)vm;
	return NULL;
}

/* The case under way, for the teardown after a failed assertion. */
static struct hx *cur;

static int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1; /* the directory's own fd */
}

static bool log_has(const struct hx *h, const char *what)
{
	char buf[65536];
	ssize_t n = pread(h->log, buf, sizeof(buf) - 1, 0);

	if (n < 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

static bool pid_gone(pid_t pid)
{
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

/* What the fake runner got: NEEDS_RESET and RESET_DONE for the hostile
 * device are counted, the rest (ADD_DEVICE and its eventfds) dropped. */
static void runner_poll(struct hx *h)
{
	struct bh_frame f;

	while (bh_frame_read(h->runner[1], &h->rrd, &f) == 1) {
		Bh__VirtioDeviceRef *ref = NULL;

		if (f.type == BH__MSG_TYPE__MSG_VIRTIO_NEEDS_RESET ||
		    f.type == BH__MSG_TYPE__MSG_VIRTIO_RESET_DONE)
			ref =
			    bh__virtio_device_ref__unpack(NULL, f.len, f.body);
		if (ref && ref->index == HOSTILE) {
			if (f.type == BH__MSG_TYPE__MSG_VIRTIO_NEEDS_RESET)
				h->needs_reset++;
			else
				h->reset_done++;
		}
		if (ref)
			bh__virtio_device_ref__free_unpacked(ref, NULL);
		bh_frame_release(&f);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the controller's loop until pred(h) or ms passed; pred's result. */
static bool run_until(struct hx *h, bool (*pred)(struct hx *), int ms)
{
	uint64_t end = bh_now_ns() + (uint64_t)ms * 1000000;

	for (;;) {
		runner_poll(h);
		if (pred(h))
			return true;
		if (bh_now_ns() >= end)
			return false;
		event_base_loop(h->base, EVLOOP_ONCE);
	}
}

static bool hostile_gone(struct hx *h)
{
	return pid_gone(h->pid);
}

/* The worker of device id, from every process's command line (the worker
 * may be PID 1 of a namespace of its own, and cannot tell its pid here). */
static pid_t worker_pid(const char *id)
{
	char want[64], path[300], buf[512];
	DIR *dir = opendir("/proc");
	struct dirent *e;
	pid_t found = -1;
	size_t wlen;

	assert_non_null(dir);
	/* Matched with both NULs: a cut pattern would match a longer id's
	 * worker, so it fails the test instead. */
	wlen = (size_t)snprintf(want, sizeof(want), "--id%c%s", '\0', id) + 1;
	assert_true(wlen <= sizeof(want));
	while ((e = readdir(dir))) {
		ssize_t n;
		int fd;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		close(fd);
		if (n > 0 && memmem(buf, (size_t)n, want, wlen))
			found = (pid_t)atoi(e->d_name);
	}
	closedir(dir);
	return found;
}

/* The same for a test of its own: arg is the socketpair. */
static int runner_send_sp(void *arg, uint16_t type, const ProtobufCMessage *m,
			  const int *fds, unsigned int nfds)
{
	return bh_frame_send(((int *)arg)[0], type, m, fds, nfds);
}

/* The controller's side of the fake runner's socketpair, for devices.c. */
static int runner_send(void *arg, uint16_t type, const ProtobufCMessage *m,
		       const int *fds, unsigned int nfds)
{
	struct hx *h = arg;

	return bh_frame_send(h->runner[0], type, m, fds, nfds);
}

/* A VM of a hostile disk named mode and an rng, its workers started. */
static void hx_open(struct hx *h, const char *mode)
{
	char disk[128], env[256], err[256];
	char *argv[] = { "bulkhead", "--kernel", "/dev/null", "--disk",
			 disk,	     "--rng",	 "",	      NULL };
	struct bh_mem_layout l;
	struct timeval tv = { 0, 10000 };
	int fd;

	memset(h, 0, sizeof(*h));
	cur = h;
	h->mode = mode;
	h->runner[0] = h->runner[1] = -1;
	fflush(stderr);
	h->saved_err = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	h->log = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	assert_true(h->saved_err >= 0 && h->log >= 0);
	assert_int_equal(dup2(h->log, STDERR_FILENO), STDERR_FILENO);
	h->fds0 = count_fds();

	snprintf(h->img, sizeof(h->img), "/tmp/bh-test-hostile-XXXXXX");
	fd = mkostemp(h->img, O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SIZE), 0);
	close(fd);
	snprintf(h->id, sizeof(h->id), "%s.%d", mode, (int)getpid());
	snprintf(h->marker, sizeof(h->marker), "/tmp/bh-hostile-%s", h->id);
	unlink(h->marker);
	snprintf(disk, sizeof(disk), "path=%s,id=%s", h->img, h->id);
	assert_int_equal(bh_config_parse_args(BH_ARRAY_SIZE(argv) - 1, argv,
					      &h->cfg, err, sizeof(err)),
			 0);
	snprintf(env, sizeof(env), "%s:%s", h->id, BH_HOSTILE_WORKER);
	assert_int_equal(setenv("BULKHEAD_TEST_WORKER", env, 1), 0);
	assert_int_equal(bh_devices_open(&h->cfg, BULKHEAD_LIBEXECDIR, &h->d,
					 err, sizeof(err)),
			 0);
	assert_int_equal(bh_layout_compute(RAM_SIZE, &l), 0);
	assert_int_equal(bh_guest_mem_create(&h->mem, &l), 0);
	h->base = event_base_new();
	assert_non_null(h->base);
	h->tick = event_new(h->base, -1, EV_PERSIST, on_tick, NULL);
	assert_non_null(h->tick);
	assert_int_equal(event_add(h->tick, &tv), 0);

	/* A worker that fails its set-up is gone when start returns: find
	 * it while the controller waits for it. */
	if (strncmp(mode, "setup-", 6) == 0) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			for (int i = 0; i < 400 && worker_pid(h->id) < 0; i++)
				usleep(5000);
			_exit(worker_pid(h->id) > 0 ? 0 : 1);
		}
		h->start_ret = bh_devices_start(h->d, &h->mem, h->base);
		assert_int_equal(waitpid(pid, &fd, 0), pid);
		assert_int_equal(fd, 0);
		return;
	}
	h->start_ret = bh_devices_start(h->d, &h->mem, h->base);
	assert_int_equal(h->start_ret, 0);
	h->pid = worker_pid(h->id);
	assert_true(h->pid > 0);
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, h->runner), 0);
	assert_int_equal(fcntl(h->runner[1], F_SETFL, O_NONBLOCK), 0);
	bh_frame_reader_init(&h->rrd, BH_FRAME_MAX_BODY);
	assert_int_equal(bh_devices_attach(h->d, runner_send, h), 0);
	runner_poll(h);
	h->fds_up = count_fds();
}

static void log_dump(struct hx *h)
{
	char *buf = malloc(65536);
	ssize_t n;

	assert_non_null(buf);
	n = pread(h->log, buf, 65535, 0);
	if (n > 0)
		bh_write_full(STDERR_FILENO, buf, (size_t)n);
	free(buf);
}

static void log_restore(struct hx *h)
{
	dup2(h->saved_err, STDERR_FILENO);
	bh_closep(&h->saved_err);
}

static void hx_close(struct hx *h)
{
	bh_devices_close(h->d);
	h->d = NULL;
	event_free(h->tick);
	event_base_free(h->base);
	bh_guest_mem_destroy(&h->mem);
	bh_frame_reader_reset(&h->rrd);
	bh_closep(&h->runner[0]);
	bh_closep(&h->runner[1]);
	bh_config_free(&h->cfg);
	unlink(h->img);
	unlink(h->marker);
	assert_int_equal(count_fds(), h->fds0);
	/* Every worker, the hostile one's successors too, is reaped. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);

	log_restore(h);
	if (getenv("BH_TEST_LOG"))
		log_dump(h);
	bh_closep(&h->log);
	cur = NULL;
}

/* After a failure inside a case: the log to see why, no worker left. */
static int teardown(void **state)
{
	struct hx *h = cur;

	if (!h)
		return 0;
	cur = NULL;
	log_restore(h);
	log_dump(h);
	bh_closep(&h->log);
	bh_devices_close(h->d);
	unlink(h->img);
	unlink(h->marker);
	return 0;
}

struct cres {
	bool called;
	bool rng, dev;
	uint64_t requests;
	const char *id;
};

static void on_counters(void *arg, const struct bh_device_counters *devs,
			unsigned int n)
{
	struct cres *c = arg;

	c->called = true;
	for (unsigned int i = 0; i < n; i++) {
		if (strcmp(devs[i].id, "rng0") == 0)
			c->rng = true;
		if (strcmp(devs[i].id, c->id) == 0) {
			c->dev = true;
			if (devs[i].n == 1)
				c->requests = devs[i].c[0].value;
		}
	}
}

static struct cres *cur_counters;

static bool counters_called(struct hx *h)
{
	return cur_counters->called;
}

/* Asks every worker for its counters through the loop. */
static struct cres counters(struct hx *h, int timeout_ms)
{
	struct cres c = { .id = h->id };

	assert_int_equal(bh_devices_counters(h->d, timeout_ms, on_counters, &c),
			 0);
	cur_counters = &c;
	assert_true(run_until(h, counters_called, timeout_ms + 5000));
	cur_counters = NULL;
	return c;
}

/*
 * After the worker's misbehaviour: it is gone, reaped, its fds closed, the
 * log says which device and why, the runner heard that the device needs a
 * reset, and the rng worker and the device's next worker answer.
 */
static void check_failed(struct hx *h, const char *why)
{
	char line[160];
	struct cres c;

	assert_true(run_until(h, hostile_gone, 5000));
	errno = 0;
	assert_int_equal(waitpid(h->pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	snprintf(line, sizeof(line), "device %s: worker %s", h->id, why);
	if (!log_has(h, line))
		fail_msg("no log line '%s'", line);
	snprintf(line, sizeof(line), "device %s: replaced its worker", h->id);
	if (!log_has(h, line))
		fail_msg("no log line '%s'", line);
	runner_poll(h);
	assert_true(h->needs_reset >= 1);
	assert_int_equal(count_fds(), h->fds_up);
	c = counters(h, 2000);
	assert_true(c.rng);
	assert_true(c.dev); /* the replacement */
	assert_int_equal(c.requests, 1);
}

static void run_case(const char *mode, const char *why)
{
	static struct hx h;

	hx_open(&h, mode);
	check_failed(&h, why);
	hx_close(&h);
}

/* A worker that behaves: nothing is logged against it. */
static void test_good(void **state)
{
	static struct hx h;
	struct cres c;

	hx_open(&h, "good");
	c = counters(&h, 2000);
	assert_true(c.rng && c.dev);
	assert_false(pid_gone(h.pid));
	assert_false(log_has(&h, ": worker "));
	assert_int_equal(h.needs_reset, 0);
	hx_close(&h);
}

static void test_garbage(void **state)
{
	run_case("garbage", "connection: Message too long; killed it");
}

static void test_badflags(void **state)
{
	run_case("badflags", "connection: Bad message; killed it");
}

static void test_huge(void **state)
{
	run_case("huge", "connection: Message too long; killed it");
}

static void test_max1(void **state)
{
	run_case("max1", "connection: Message too long; killed it");
}

static void test_unknown(void **state)
{
	run_case("unknown", "sent a bad message (unknown, type 999): No "
			    "message of desired type; killed it");
}

static void test_badbody(void **state)
{
	run_case("badbody",
		 "sent a bad message (error, type 2): Bad message; killed it");
}

static void test_unexpected(void **state)
{
	run_case("unexpected", "sent a bad message (unknown, type 16)");
}

static void test_hello2(void **state)
{
	run_case("hello2", "sent a bad message (unknown, type 1)");
}

static void test_ready2(void **state)
{
	run_case("ready2", "sent a bad message (worker-ready, type 65): "
			   "Operation not permitted; killed it");
}

static void test_resetdone(void **state)
{
	run_case("resetdone", "sent a bad message (device-reset-done, type "
			      "68): Protocol error; killed it");
}

static void test_activate(void **state)
{
	run_case("activate", "sent a bad message (unknown, type 66)");
}

static void test_counters(void **state)
{
	run_case("counters", "sent a bad message (counters, type 73): "
			     "Protocol error; killed it");
}

static void test_fds(void **state)
{
	run_case("fds", "connection: Protocol error; killed it");
}

static void test_fds_hdr(void **state)
{
	run_case("fds-hdr",
		 "sent a bad message (error, type 2): Protocol error");
}

static void test_fds64(void **state)
{
	run_case("fds64", "connection: Protocol error; killed it");
}

static void test_fewfds(void **state)
{
	run_case("fewfds", "connection: Protocol error; killed it");
}

/* A worker that closes its socket and lives on is not waited for. */
static void test_close(void **state)
{
	uint64_t t0 = bh_now_ns();

	run_case("close", "closed its connection and did not exit; killed it");
	assert_true(bh_now_ns() - t0 < 1500000000ull);
}

static void test_exit(void **state)
{
	run_case("exit", "exited with status 3");
}

/* A worker that stops reading: the controller's writes wait
 * WORKER_SEND_TIMEOUT for room once, then the worker goes. */
static void test_deaf(void **state)
{
	static struct hx h;
	Bh__VirtioConfigWrite w = BH__VIRTIO_CONFIG_WRITE__INIT;
	uint8_t data[8] = { 0 };
	uint64_t t0;

	hx_open(&h, "deaf");
	w.index = HOSTILE;
	w.data.data = data;
	w.data.len = sizeof(data);
	t0 = bh_now_ns();
	for (int i = 0; i < 100000 && !pid_gone(h.pid); i++)
		assert_int_equal(bh_devices_config_write(h.d, &w), 0);
	assert_true(pid_gone(h.pid));
	assert_true(bh_now_ns() - t0 < 5000000000ull);
	check_failed(&h, "left its messages unread for 300 ms; killed it");
	hx_close(&h);
}

static uint64_t fired;

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	fired = bh_now_ns();
}

static bool timer_fired(struct hx *h)
{
	return fired != 0;
}

/* A worker that sends valid frames without pause for two seconds: the loop
 * serves a timer meanwhile. */
static void test_flood(void **state)
{
	static struct hx h;
	struct timeval tv = { 0, 20000 };
	struct event *t;
	uint64_t t0;

	hx_open(&h, "flood");
	fired = 0;
	t = evtimer_new(h.base, on_timer, NULL);
	assert_non_null(t);
	t0 = bh_now_ns();
	assert_int_equal(evtimer_add(t, &tv), 0);
	assert_true(run_until(&h, timer_fired, 5000));
	event_free(t);
	if (fired - t0 > 500000000ull)
		fail_msg("a 20 ms timer fired after %llu ms",
			 (unsigned long long)((fired - t0) / 1000000));
	/* Valid messages, however many, are no reason to end it. */
	assert_false(pid_gone(h.pid));
	hx_close(&h);
}

/* Half a frame, then nothing: the rest must come in time. */
static void test_trunc(void **state)
{
	run_case("trunc", "left a frame unfinished for 1000 ms; killed it");
}

static void test_trunc_body(void **state)
{
	run_case("trunc-body",
		 "left a frame unfinished for 1000 ms; killed it");
}

static bool reset_answered(struct hx *h)
{
	return h->reset_done > 0;
}

/* A reset the worker never answers: the driver, which waits for status 0,
 * gets its answer when the worker is replaced. */
static void test_noreset(void **state)
{
	static struct hx h;
	Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;

	hx_open(&h, "noreset");
	ref.index = HOSTILE;
	assert_int_equal(bh_devices_reset(h.d, &ref), 0);
	assert_true(run_until(&h, reset_answered, 5000));
	check_failed(&h,
		     "did not answer a device reset for 1000 ms; killed it");
	assert_int_equal(h.reset_done, 1);
	hx_close(&h);
}

/* Counters it never answers: the API's answer comes at its timeout without
 * the device, and the worker is replaced later. */
static void test_nocounters(void **state)
{
	static struct hx h;
	struct cres c;

	hx_open(&h, "nocounters");
	c = counters(&h, 200);
	assert_true(c.rng);
	assert_false(c.dev);
	check_failed(
	    &h, "did not answer a counters request for 1000 ms; killed it");
	hx_close(&h);
}

static int paused_calls;

static void on_paused(void *arg)
{
	(void)arg;
	paused_calls++;
}

static bool paused(struct hx *h)
{
	(void)h;
	return paused_calls > 0;
}

/* A DEVICE_PAUSED nobody asked for is a protocol error. */
static void test_paused_unasked(void **state)
{
	run_case("paused", "sent a bad message (device-paused, type 78): "
			   "Protocol error; killed it");
}

/* The pause is complete once both workers (the rng and the one under
 * test) have confirmed; a second pause is refused; resume wakes them. */
static void test_pause_good(void **state)
{
	static struct hx h;
	struct cres c;

	hx_open(&h, "good");
	paused_calls = 0;
	assert_int_equal(bh_devices_pause(h.d, on_paused, NULL), 0);
	assert_false(bh_devices_pause(h.d, on_paused, NULL) >= 0);
	assert_true(run_until(&h, paused, 2000));
	assert_int_equal(paused_calls, 1);
	assert_true(bh_devices_paused(h.d));
	bh_devices_resume(h.d);
	assert_false(bh_devices_paused(h.d));
	c = counters(&h, 2000);
	assert_true(c.rng && c.dev);
	assert_false(log_has(&h, ": worker "));
	hx_close(&h);
}

/*
 * A worker that never confirms a pause is killed after the answer timeout,
 * and the pause completes without it; its replacement waits for the resume
 * (a paused VM's devices take up no ring).
 */
static void test_nopause(void **state)
{
	static struct hx h;
	char line[160];
	struct cres c;

	hx_open(&h, "nopause");
	paused_calls = 0;
	assert_int_equal(bh_devices_pause(h.d, on_paused, NULL), 0);
	assert_true(run_until(&h, paused, 5000));
	assert_true(run_until(&h, hostile_gone, 2000));
	snprintf(line, sizeof(line),
		 "device %s: worker did not confirm a pause for 1000 ms; "
		 "killed it",
		 h.id);
	if (!log_has(&h, line))
		fail_msg("no log line '%s'", line);
	assert_true(log_has(&h, "is replaced when the VM resumes"));
	assert_true(worker_pid(h.id) < 0);
	bh_devices_resume(h.d);
	snprintf(line, sizeof(line), "device %s: replaced its worker", h.id);
	if (!log_has(&h, line))
		fail_msg("no log line '%s'", line);
	assert_true(worker_pid(h.id) > 0);
	c = counters(&h, 2000);
	assert_true(c.rng && c.dev);
	hx_close(&h);
}

/* Before it is watched: bh_devices_start fails, nothing is left. */
static void test_setup_garbage(void **state)
{
	static struct hx h;

	hx_open(&h, "setup-garbage");
	assert_true(h.start_ret < 0);
	assert_true(log_has(&h, "worker set-up failed: Message too long"));
	assert_true(worker_pid(h.id) < 0);
	hx_close(&h);
}

/* bh_devices_open with one --pmem ARG: 0 or the error, its message in
 * err. */
static int pmem_open(const char *arg, struct bh_config *cfg,
		     struct bh_devices **d, char *err, size_t errlen)
{
	char *argv[] = { "bulkhead", "--kernel",  "/dev/null",
			 "--pmem",   (char *)arg, NULL };
	int r;

	assert_int_equal(bh_config_parse_args(BH_ARRAY_SIZE(argv) - 1, argv,
					      cfg, err, errlen),
			 0);
	r = bh_devices_open(cfg, BULKHEAD_LIBEXECDIR, d, err, errlen);
	if (r < 0)
		bh_config_free(cfg);
	return r;
}

/* The controller's side of virtio-pmem: the file checked, sized and
 * grown at open, and the region handed to the runner with its fd. */
static void test_pmem(void **state)
{
	char path[64], arg[160], err[256];
	struct bh_devices *d = NULL;
	struct bh_mem_layout l;
	struct bh_guest_mem mem;
	struct bh_frame_reader rd;
	struct event_base *base;
	Bh__RunnerAddDevice *add;
	struct bh_config cfg;
	struct bh_frame f;
	int fd, sp[2];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/bh-test-pmem-XXXXXX");
	fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);

	snprintf(arg, sizeof(arg), "file=%s.none,size=2M", path);
	assert_int_equal(pmem_open(arg, &cfg, &d, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "--pmem"));
	assert_non_null(strstr(err, ".none"));
	/* Nothing may grow a discard_writes file. */
	snprintf(arg, sizeof(arg), "file=%s,size=2M,discard_writes=on", path);
	assert_int_equal(pmem_open(arg, &cfg, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "less than size=2097152"));
	assert_non_null(strstr(err, "discard_writes=on does not grow it"));
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	assert_int_equal(
	    pmem_open("file=/tmp,size=2M", &cfg, &d, err, sizeof(err)),
	    -EISDIR);
	assert_non_null(strstr(err, "--pmem"));
	/* A region past the guest's physical addresses. */
	snprintf(arg, sizeof(arg), "file=%s,size=1T", path);
	{
		char *argv[] = { "bulkhead", "--kernel", "/dev/null",
				 "--memory", "size=1T",	 "--pmem",
				 arg,	     NULL };

		assert_int_equal(bh_config_parse_args(BH_ARRAY_SIZE(argv) - 1,
						      argv, &cfg, err,
						      sizeof(err)),
				 0);
		assert_int_equal(bh_devices_open(&cfg, BULKHEAD_LIBEXECDIR, &d,
						 err, sizeof(err)),
				 -ENOSPC);
		assert_non_null(strstr(err, "do not fit"));
		bh_config_free(&cfg);
	}
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);

	/* Writable: grown to size; then started, and attached. */
	snprintf(arg, sizeof(arg), "file=%s,size=4M,id=pm", path);
	assert_int_equal(pmem_open(arg, &cfg, &d, err, sizeof(err)), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 4 << 20);
	assert_int_equal(bh_layout_compute(RAM_SIZE, &l), 0);
	assert_int_equal(bh_guest_mem_create(&mem, &l), 0);
	base = event_base_new();
	assert_non_null(base);
	assert_int_equal(bh_devices_start(d, &mem, base), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp),
			 0);
	assert_int_equal(bh_devices_attach(d, runner_send_sp, sp), 0);
	bh_frame_reader_init(&rd, BH_FRAME_MAX_BODY);
	assert_int_equal(bh_frame_read_timeout(sp[1], &rd, &f, 5000), 0);
	assert_int_equal(f.type, BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE);
	add = bh__runner_add_device__unpack(NULL, f.len, f.body);
	assert_non_null(add);
	assert_int_equal(add->device->device_type, 27);
	assert_string_equal(add->device->id, "pm");
	assert_int_equal(add->device->num_queues, 1);
	assert_non_null(add->device->shm);
	/* The default 512 MiB of RAM: the region at 4 GiB. */
	assert_int_equal(add->device->shm->guest_phys, 1ULL << 32);
	assert_int_equal(add->device->shm->size, 4 << 20);
	assert_false(add->device->shm->private_);
	/* The config space says the same. */
	assert_int_equal(add->device->config.len, 16);
	assert_int_equal(((uint64_t *)add->device->config.data)[0], 1ULL << 32);
	assert_int_equal(((uint64_t *)add->device->config.data)[1], 4 << 20);
	/* Kick, call, and the file last. */
	assert_int_equal(f.nfds, 3);
	assert_int_equal(fstat(f.fds[2], &st), 0);
	{
		struct stat st2;

		assert_int_equal(fstat(fd, &st2), 0);
		assert_int_equal(st.st_ino, st2.st_ino);
		assert_int_equal(st.st_dev, st2.st_dev);
	}
	bh__runner_add_device__free_unpacked(add, NULL);
	bh_frame_release(&f);
	bh_devices_stop(d);
	bh_devices_close(d);
	bh_guest_mem_destroy(&mem);
	event_base_free(base);
	close(sp[0]);
	close(sp[1]);
	bh_config_free(&cfg);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pmem),
		cmocka_unit_test_teardown(test_good, teardown),
		cmocka_unit_test_teardown(test_garbage, teardown),
		cmocka_unit_test_teardown(test_badflags, teardown),
		cmocka_unit_test_teardown(test_huge, teardown),
		cmocka_unit_test_teardown(test_max1, teardown),
		cmocka_unit_test_teardown(test_unknown, teardown),
		cmocka_unit_test_teardown(test_badbody, teardown),
		cmocka_unit_test_teardown(test_unexpected, teardown),
		cmocka_unit_test_teardown(test_hello2, teardown),
		cmocka_unit_test_teardown(test_ready2, teardown),
		cmocka_unit_test_teardown(test_resetdone, teardown),
		cmocka_unit_test_teardown(test_activate, teardown),
		cmocka_unit_test_teardown(test_counters, teardown),
		cmocka_unit_test_teardown(test_fds, teardown),
		cmocka_unit_test_teardown(test_fds_hdr, teardown),
		cmocka_unit_test_teardown(test_fds64, teardown),
		cmocka_unit_test_teardown(test_fewfds, teardown),
		cmocka_unit_test_teardown(test_close, teardown),
		cmocka_unit_test_teardown(test_exit, teardown),
		cmocka_unit_test_teardown(test_setup_garbage, teardown),
		cmocka_unit_test_teardown(test_deaf, teardown),
		cmocka_unit_test_teardown(test_flood, teardown),
		cmocka_unit_test_teardown(test_trunc, teardown),
		cmocka_unit_test_teardown(test_trunc_body, teardown),
		cmocka_unit_test_teardown(test_noreset, teardown),
		cmocka_unit_test_teardown(test_nocounters, teardown),
		cmocka_unit_test_teardown(test_paused_unasked, teardown),
		cmocka_unit_test_teardown(test_pause_good, teardown),
		cmocka_unit_test_teardown(test_nopause, teardown),
	};

	/* A controller that blocks for good fails the test, not ctest. */
	alarm(50);
	signal(SIGPIPE, SIG_IGN);
	bh_log_init("bulkhead/test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
