/* Supervision of the device workers: spawns each worker and takes it to
 * READY, watches its socket and what it owes, and replaces one that dies or
 * misbehaves within the restart window (--restart-devices). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/log.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "dev.h"
#include "dirty.h"
#include "kmsg.h"
#include "launcher.h"

#define WORKER_EOF_GRACE 200 /* ms, from its closed socket to its exit */
/* Frames taken from one worker per wake-up of the loop, so that a worker
 * that never stops sending cannot starve the runner, the API and the
 * other devices. */
#define WORKER_FRAMES_PER_WAKE 32
#define RESTART_WINDOW_MS      60000 /* --restart-devices max=N per this */

/* Waits for the worker to exit, SIGKILL after grace_ms; its wait status. */
static int worker_reap(struct bh_dev *v, int grace_ms)
{
	int status;

	if (v->pid <= 0)
		return 0;
	status = bh_reap(v->pid, grace_ms, NULL);
	v->pid = -1;
	return status;
}

static void worker_close(struct bh_dev *v)
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

static void worker_replace(struct bh_dev *v);

/* Logs how a worker ended (status from worker_reap), naming the system call
 * when its seccomp filter killed it; when is appended. */
static void worker_report(struct bh_dev *v, pid_t pid, int status,
			  const char *when)
{
	char desc[96], what[96];

	snprintf(what, sizeof(what), "worker %s (%s)", v->id, v->type->name);
	if (bh_kmsg_report_sigsys(v->devs->kmsg, pid, status, what))
		return;
	bh_err("device %s: worker %s%s", v->id,
	       bh_describe_status(status, desc, sizeof(desc)), when);
}

/*
 * The worker died or broke the protocol: it goes, and another takes its
 * place (worker_replace). A reset the driver waits for is answered here:
 * the new worker starts with the device reset.
 */
void bh_sup_fail(struct bh_dev *v, const char *why, bool kill_it)
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
		bh_dev_counters_check(v->devs);
	}
	/* A dead worker is as quiet as a paused one. */
	if (v->pause_sent || v->pause_owed) {
		v->pause_sent = 0;
		v->pause_owed = 0;
		bh_dev_pause_check(v->devs);
	}
	if (v->reset_pending) {
		v->active = false;
		bh_dev_reset_done(v);
	}
	/* It writes no more guest RAM: a dirty log it owes counts as
	 * answered, and its replacement gets the log before it serves. */
	bh_dirty_worker_gone(v);
	worker_replace(v);
}

/* A worker's socket was full for WORKER_SEND_TIMEOUT, or is gone. */
void bh_sup_send_failed(struct bh_dev *v, int r)
{
	char why[96];

	if (r == -ETIMEDOUT)
		snprintf(why, sizeof(why), "left its messages unread for %d ms",
			 WORKER_SEND_TIMEOUT);
	else
		snprintf(why, sizeof(why), "cannot be reached: %s",
			 strerror(-r));
	bh_sup_fail(v, why, true);
}

/* A worker that owes an answer, or the rest of a frame, for longer than
 * WORKER_ANSWER_TIMEOUT is stuck: a reset the guest waits for would hang
 * its driver for ever. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct bh_dev *v = arg;
	const struct {
		uint64_t since;
		const char *what;
	} owed[] = {
		{ v->reset_pending ? v->reset_sent : 0,
		  "did not answer a device reset" },
		{ v->counters_asked ? v->counters_sent : 0,
		  "did not answer a counters request" },
		{ v->frame_since, "left a frame unfinished" },
		{ v->pause_sent, "did not confirm a pause" },
		{ v->dirty_owed ? v->dirty_sent : 0,
		  "did not answer a dirty log request" },
	};
	uint64_t now = bh_dev_now_ms(), next = 0;
	struct timeval tv;
	char why[96];

	for (size_t i = 0; i < BH_ARRAY_SIZE(owed); i++) {
		uint64_t left;

		if (!owed[i].since)
			continue;
		if (now - owed[i].since >= WORKER_ANSWER_TIMEOUT) {
			snprintf(why, sizeof(why), "%s for %d ms", owed[i].what,
				 WORKER_ANSWER_TIMEOUT);
			bh_sup_fail(v, why, true);
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

void bh_sup_watchdog_arm(struct bh_dev *v)
{
	struct timeval tv = { WORKER_ANSWER_TIMEOUT / 1000,
			      (WORKER_ANSWER_TIMEOUT % 1000) * 1000 };

	if (v->watchdog && !evtimer_pending(v->watchdog, NULL))
		evtimer_add(v->watchdog, &tv);
}

static int worker_spawn(struct bh_dev *v, const struct bh_config *cfg)
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

	snprintf(name, sizeof(name), "bulkhead-dev-%s", v->type->name);
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
		r = bh_launcher_spawn(v->devs->launcher, v->type->launch, v->id,
				      sv[1], &v->pid);
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

/* Whether the worker has exited (it is not reaped here), waiting at most
 * ms: the loop stands still meanwhile. */
static bool worker_exited(struct bh_dev *v, int ms)
{
	uint64_t end = bh_dev_now_ms() + (uint64_t)ms;
	siginfo_t si;

	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)v->pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    si.si_pid == v->pid)
			return true;
		if (bh_dev_now_ms() >= end)
			return false;
		usleep(5000);
	}
}

static void on_worker(evutil_socket_t fd, short what, void *arg)
{
	struct bh_dev *v = arg;
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
				v->frame_since = bh_dev_now_ms();
				bh_sup_watchdog_arm(v);
			}
			return;
		}
		if (r < 0)
			break;
		v->frame_since = 0;
		if (bh_dev_dispatch(v, &f, why, sizeof(why)) < 0) {
			bh_sup_fail(v, why, true);
			return;
		}
	}
	if (r > 0)
		return;
	if (r == -EPIPE || r == -ECONNRESET) {
		/* A worker that closed its socket has ended or is ending; one
		 * that lives on is not waited for. */
		if (v->pid > 0 && !worker_exited(v, WORKER_EOF_GRACE))
			bh_sup_fail(v, "closed its connection and did not exit",
				    true);
		else
			bh_sup_fail(v, NULL, false);
		return;
	}
	snprintf(why, sizeof(why), "connection: %s", strerror(-r));
	bh_sup_fail(v, why, true);
}

int bh_sup_start(struct bh_dev *v, const struct bh_guest_mem *mem)
{
	const struct bh_config *cfg = v->devs->cfg;
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

		snprintf(role, sizeof(role), "dev-%s", v->type->name);
		r = bh_hello_check(&f, role);
		bh_frame_release(&f);
	}
	if (r == 0)
		r = bh_dev_send_setup(v, mem);
	if (r == 0)
		r = bh_frame_read_timeout(v->sock, &v->rd, &f,
					  WORKER_SETUP_TIMEOUT);
	if (r == 0)
		r = bh_dev_dispatch(v, &f, why, sizeof(why));
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

int bh_sup_watch(struct bh_dev *v)
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

/* Restarts within the last window, after forgetting older ones. Every
 * entry of the ring counts (it holds the latest restarts, and at least max
 * of them), not only its first max: those are the oldest. */
static bool restart_allowed(struct bh_dev *v, uint64_t now)
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
static void worker_replace(struct bh_dev *v)
{
	struct bh_devices *d = v->devs;
	uint64_t t0 = bh_dev_now_ms();
	uint64_t features = v->features;
	unsigned int nq = v->nq, qsize = v->qsize;
	bool restart;
	int r;

	if (!d->mem || !d->base)
		return; /* not during a boot */
	/* A replacement takes up the rings at once, and a paused VM's
	 * devices write no guest RAM: it waits for the resume. */
	if (d->paused) {
		v->replace_on_resume = true;
		bh_warn("device %s: the VM is paused: its worker is replaced "
			"when the VM resumes",
			v->id);
		return;
	}
	if (v->failed) {
		bh_err("device %s: the worker that failed its requests died "
		       "too: the device is dead until the VM reboots",
		       v->id);
		bh_dev_needs_reset(v, "device worker failed");
		return;
	}
	restart = d->cfg->restart_devices && restart_allowed(v, t0);
	if (d->cfg->restart_devices && !restart)
		bh_err("device %s: restart limit reached (%u in the last "
		       "minute)",
		       v->id, d->cfg->max_restarts);
	if (!restart)
		v->failed = true;
	r = bh_sup_start(v, d->mem);
	if (r == 0 &&
	    (v->features != features || v->nq != nq || v->qsize != qsize)) {
		bh_err("device %s: the new worker offers another device",
		       v->id);
		r = -EPROTO;
	}
	if (r == 0)
		r = bh_sup_watch(v);
	/* Logging on: the log first, in force before the activation that
	 * follows it on the socket, so that no write of the new worker goes
	 * unlogged. */
	if (r == 0)
		r = bh_dirty_worker_new(v);
	if (r == 0 && v->active)
		r = bh_dev_send_activate(v, true);
	if (r < 0) {
		if (v->pid > 0)
			kill(v->pid, SIGKILL);
		worker_reap(v, WORKER_EXIT_TIMEOUT);
		worker_close(v);
		v->ws = WK_DEAD;
		bh_dirty_worker_gone(v);
		bh_err("device %s: no worker could replace the dead one: the "
		       "device is dead until the VM reboots",
		       v->id);
		bh_dev_needs_reset(v, "device worker failed");
		return;
	}
	if (restart) {
		v->restarts[v->nrestarts++ % BH_CONFIG_MAX_RESTARTS] = t0;
		bh_warn("device %s: restarted its worker in %llu ms (pid %d)",
			v->id, (unsigned long long)(bh_dev_now_ms() - t0),
			(int)v->pid);
	} else {
		bh_warn("device %s: replaced its worker by one that fails "
			"every request (pid %d); the device works again after "
			"the VM reboots",
			v->id, (int)v->pid);
		bh_dev_needs_reset(v, "device worker failed");
	}
}

void bh_sup_replace(struct bh_dev *v)
{
	worker_replace(v);
}

void bh_sup_stop_one(struct bh_dev *v)
{
	Bh__Quit quit = BH__QUIT__INIT;

	if (v->sock >= 0 && v->pid > 0 &&
	    bh_frame_send_timeout(v->sock, BH__MSG_TYPE__MSG_QUIT, &quit.base,
				  NULL, 0, 0) < 0)
		kill(v->pid, SIGKILL);
	/* SIGKILL after the grace period: one device going must not hold
	 * the loop longer than that. */
	worker_reap(v, WORKER_EXIT_TIMEOUT);
	worker_close(v);
	if (v->watchdog) {
		event_free(v->watchdog);
		v->watchdog = NULL;
	}
}

void bh_sup_stop(struct bh_devices *d)
{
	Bh__Quit quit = BH__QUIT__INIT;
	uint64_t deadline = bh_dev_now_ms() + WORKER_EXIT_TIMEOUT;
	struct bh_dev *v;
	unsigned int left;

	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		v = d->slot[i];
		/* No waiting for room: a worker that does not read is killed.
		 */
		if (v && v->sock >= 0 && v->pid > 0 &&
		    bh_frame_send_timeout(v->sock, BH__MSG_TYPE__MSG_QUIT,
					  &quit.base, NULL, 0, 0) < 0)
			kill(v->pid, SIGKILL);
	}
	/* One grace period for all of them, not one each. */
	do {
		left = 0;
		for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
			v = d->slot[i];
			if (!v)
				continue;
			if (v->pid > 0 && waitpid(v->pid, NULL, WNOHANG) == 0)
				left++;
			else
				v->pid = -1;
		}
		if (left)
			usleep(5000);
	} while (left && bh_dev_now_ms() < deadline);
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		v = d->slot[i];
		if (!v)
			continue;
		if (v->pid > 0) {
			bh_warn("device %s: worker did not exit; killing it",
				v->id);
			worker_reap(v, 0);
		}
		worker_close(v);
		if (v->watchdog) {
			event_free(v->watchdog);
			v->watchdog = NULL;
		}
	}
}
