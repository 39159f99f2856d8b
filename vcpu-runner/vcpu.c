/* vCPU threads: KVM_RUN, exits handed to the port bus, guest events. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include <bulkhead/log.h>
#include <bulkhead/platform.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/util.h>

#include "runner.h"

/* Kicks a vCPU out of KVM_RUN; the handler only has to exist. The seccomp
 * filter allows sending it only to the runner's own threads. */
#define KICK_SIGNAL BH_RUNNER_KICK_SIGNAL

static void kick_handler(int sig)
{
	(void)sig;
}

static int stopping(struct runner *rn)
{
	return __atomic_load_n(&rn->stopping, __ATOMIC_ACQUIRE);
}

void runner_guest_event(struct runner *rn, Bh__GuestEvent__Kind kind,
			unsigned int vcpu, const char *fmt, ...)
{
	Bh__GuestEvent ev = BH__GUEST_EVENT__INIT;
	char reason[256];
	va_list ap;

	/* Only the first event of a run counts: a poweroff racing a crash
	 * on another vCPU must not produce two verdicts. */
	if (__atomic_exchange_n(&rn->event_sent, 1, __ATOMIC_ACQ_REL))
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (rn->have_uart)
		bh_uart_flush(&rn->uart);
	ev.kind = kind;
	ev.vcpu = vcpu;
	ev.reason = reason;
	if (runner_send(rn, BH__MSG_TYPE__MSG_GUEST_EVENT, &ev.base) < 0)
		bh_err("cannot report guest event: %s", reason);
	runner_vcpus_stop(rn);
}

static void handle_io(struct bh_vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned int size = run->io.size;
	int in = run->io.direction == KVM_EXIT_IO_IN;

	bh_exitstats_count(&v->stats, in ? BH_EXIT_IO_IN : BH_EXIT_IO_OUT,
			   run->io.port);
	/* size and count come from KVM, which bounds them by the page that
	 * data_offset points into; string I/O repeats the access. */
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		uint32_t val = 0;

		if (in) {
			bh_iobus_read(&v->rn->iobus, run->io.port, size, &val);
			memcpy(data, &val, size);
		} else {
			memcpy(&val, data, size);
			bh_iobus_write(&v->rn->iobus, run->io.port, size, val);
		}
	}
}

static void handle_mmio(struct bh_vcpu *v)
{
	struct kvm_run *run = v->run;
	struct runner *rn = v->rn;
	uint64_t off;

	bh_exitstats_count(&v->stats,
			   run->mmio.is_write ? BH_EXIT_MMIO_WRITE
					      : BH_EXIT_MMIO_READ,
			   run->mmio.phys_addr);
	if (run->mmio.phys_addr >= BH_HOTPLUG_MMIO_ADDR &&
	    run->mmio.phys_addr - BH_HOTPLUG_MMIO_ADDR < BH_HOTPLUG_MMIO_SIZE) {
		bh_hotplug_mmio(
		    &rn->hotplug, run->mmio.phys_addr - BH_HOTPLUG_MMIO_ADDR,
		    run->mmio.data, run->mmio.len, run->mmio.is_write);
		return;
	}
	for (unsigned int i = 0; i < BH_MAX_DEVICES; i++) {
		/* Safe to use until this exit ends: see runner_vcpus_quiesce.
		 */
		struct bh_vpci *d =
		    __atomic_load_n(&rn->vdevs[i], __ATOMIC_SEQ_CST);

		if (d && bh_vpci_claims(d, run->mmio.phys_addr, &off)) {
			bh_vpci_mmio(d, off, run->mmio.data, run->mmio.len,
				     run->mmio.is_write);
			return;
		}
	}
	/* Nothing is mapped there: reads float high, writes vanish. */
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
	bh_log_ratelimited(BH_LOG_DEBUG, "vCPU %u: MMIO %s at 0x%llx unclaimed",
			   v->id, run->mmio.is_write ? "write" : "read",
			   (unsigned long long)run->mmio.phys_addr);
}

static unsigned long long vcpu_rip(struct bh_vcpu *v)
{
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return ~0ULL;
	return regs.rip;
}

static const char *system_event_name(uint32_t type)
{
	switch (type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		return "shutdown";
	case KVM_SYSTEM_EVENT_RESET:
		return "reset";
	case KVM_SYSTEM_EVENT_CRASH:
		return "crash";
	default:
		return "unknown";
	}
}

/* Returns 0 to keep running, 1 when the vCPU must stop. */
static int handle_exit(struct bh_vcpu *v)
{
	struct kvm_run *run = v->run;
	struct runner *rn = v->rn;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return 0;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		return 0;
	case KVM_EXIT_INTR:
		bh_exitstats_count(&v->stats, BH_EXIT_OTHER, run->exit_reason);
		return 0;
	case KVM_EXIT_HLT:
		/* With the in-kernel LAPIC, HLT stays in the kernel. */
		bh_exitstats_count(&v->stats, BH_EXIT_OTHER, run->exit_reason);
		return 0;
	case KVM_EXIT_SHUTDOWN:
		/* KVM has already reset the vCPU (on AMD at least): its
		 * registers no longer tell where the fault happened. */
		runner_guest_event(
		    rn, BH__GUEST_EVENT__KIND__CRASH, v->id,
		    "triple fault on vCPU %u (KVM_EXIT_SHUTDOWN)", v->id);
		return 1;
	case KVM_EXIT_INTERNAL_ERROR:
		runner_guest_event(
		    rn, BH__GUEST_EVENT__KIND__CRASH, v->id,
		    "KVM internal error on vCPU %u, suberror %u, "
		    "rip 0x%llx",
		    v->id, run->internal.suberror, vcpu_rip(v));
		return 1;
	case KVM_EXIT_FAIL_ENTRY:
		runner_guest_event(
		    rn, BH__GUEST_EVENT__KIND__CRASH, v->id,
		    "VM entry failed on vCPU %u, hardware reason 0x%llx", v->id,
		    (unsigned long long)
			run->fail_entry.hardware_entry_failure_reason);
		return 1;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			runner_guest_event(rn, BH__GUEST_EVENT__KIND__POWEROFF,
					   v->id, "guest requested shutdown");
			break;
		case KVM_SYSTEM_EVENT_RESET:
			runner_guest_event(rn, BH__GUEST_EVENT__KIND__RESET,
					   v->id, "guest requested reset");
			break;
		default:
			runner_guest_event(
			    rn, BH__GUEST_EVENT__KIND__CRASH, v->id,
			    "guest system event %s (%u) on vCPU %u",
			    system_event_name(run->system_event.type),
			    run->system_event.type, v->id);
			break;
		}
		return 1;
	default:
		runner_guest_event(rn, BH__GUEST_EVENT__KIND__CRASH, v->id,
				   "unexpected KVM exit reason %u on vCPU %u",
				   run->exit_reason, v->id);
		return 1;
	}
}

/* Waits, out of KVM_RUN, while a pause is requested. */
static void vcpu_park(struct bh_vcpu *v)
{
	struct runner *rn = v->rn;

	pthread_mutex_lock(&rn->pause_lock);
	rn->parked++;
	pthread_cond_broadcast(&rn->pause_cond);
	while (rn->pause_req && !stopping(rn))
		pthread_cond_wait(&rn->pause_cond, &rn->pause_lock);
	rn->parked--;
	pthread_mutex_unlock(&rn->pause_lock);
}

static int pause_requested(struct runner *rn)
{
	return __atomic_load_n(&rn->pause_req, __ATOMIC_ACQUIRE);
}

/* Start-up cost, logged once (debug) as the first vCPU enters the guest:
 * wall time since the runner started, the runner's CPU time, and the
 * CLOCK_MONOTONIC time itself, which a caller can set against its own. */
static void log_first_run(struct runner *rn)
{
	struct timespec cpu = { 0, 0 };
	uint64_t now;

	if (__atomic_exchange_n(&rn->first_run_seen, 1, __ATOMIC_ACQ_REL))
		return;
	now = bh_now_ns();
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	bh_debug("first KVM_RUN %.3f ms after the runner started, runner CPU "
		 "%.3f ms, monotonic %llu.%09llu",
		 (double)(now - rn->start_ns) / 1e6,
		 (double)cpu.tv_sec * 1e3 + (double)cpu.tv_nsec / 1e6,
		 (unsigned long long)(now / 1000000000ULL),
		 (unsigned long long)(now % 1000000000ULL));
}

static void *vcpu_thread(void *arg)
{
	struct bh_vcpu *v = arg;
	struct runner *rn = v->rn;
	sigset_t set;
	int r;

	pthread_barrier_wait(&rn->ready);
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	pthread_barrier_wait(&rn->start);
	if (bh_log_get_level() >= BH_LOG_DEBUG)
		log_first_run(rn);
	while (!stopping(rn)) {
		if (pause_requested(rn)) {
			vcpu_park(v);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				continue;
			}
			runner_guest_event(rn, BH__GUEST_EVENT__KIND__CRASH,
					   v->id,
					   "KVM_RUN on vCPU %u failed: %s",
					   v->id, strerror(errno));
			break;
		}
		/* Odd while the exit is handled: the main thread waits for
		 * it to turn even before it frees a device it unpublished. */
		__atomic_fetch_add(&v->exit_seq, 1, __ATOMIC_SEQ_CST);
		r = handle_exit(v);
		__atomic_fetch_add(&v->exit_seq, 1, __ATOMIC_SEQ_CST);
		if (r)
			break;
	}
	return NULL;
}

int runner_vcpus_start_threads(struct runner *rn)
{
	struct sigaction sa;
	sigset_t set, old;
	int r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the kick must make KVM_RUN return EINTR. */
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	r = pthread_barrier_init(&rn->start, NULL, rn->nvcpus + 1);
	if (r == 0)
		r = pthread_barrier_init(&rn->ready, NULL, rn->nvcpus + 1);
	if (r)
		return -r;

	/* Threads start with the kick blocked and unblock it themselves, so
	 * the main thread, which keeps it blocked, never takes one. */
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	for (unsigned int i = 0; i < rn->nvcpus; i++) {
		r = pthread_create(&rn->vcpus[i].thread, NULL, vcpu_thread,
				   &rn->vcpus[i]);
		if (r) {
			bh_err("cannot start vCPU thread %u: %s", i,
			       strerror(r));
			/* The threads already waiting stay parked at the
			 * barrier until the process exits. */
			return -r;
		}
		rn->vcpus[i].thread_started = 1;
	}
	/* The sandbox comes next: a thread that glibc has not finished
	 * setting up would be killed by the filter (TSYNC covers it) for
	 * its first rseq or set_robust_list. */
	pthread_barrier_wait(&rn->ready);
	return 0;
}

void runner_vcpus_release(struct runner *rn)
{
	if (rn->start_released)
		return;
	rn->start_released = 1;
	pthread_barrier_wait(&rn->start);
}

/* Makes every vCPU leave KVM_RUN soon: at once if it is inside, and at its
 * next entry otherwise (immediate_exit). */
static void kick_all(struct runner *rn)
{
	for (unsigned int i = 0; i < rn->nvcpus; i++) {
		struct bh_vcpu *v = &rn->vcpus[i];

		if (!v->thread_started || !v->run)
			continue;
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
		if (!pthread_equal(v->thread, pthread_self()))
			pthread_kill(v->thread, KICK_SIGNAL);
	}
}

void runner_vcpus_stop(struct runner *rn)
{
	__atomic_store_n(&rn->stopping, 1, __ATOMIC_RELEASE);
	kick_all(rn);
	/* Parked vCPUs must see it too. */
	pthread_mutex_lock(&rn->pause_lock);
	pthread_cond_broadcast(&rn->pause_cond);
	pthread_mutex_unlock(&rn->pause_lock);
}

int runner_vcpus_pause(struct runner *rn, int timeout_ms)
{
	unsigned int started = 0;
	struct timespec until;
	int r = 0;

	for (unsigned int i = 0; i < rn->nvcpus; i++)
		started += rn->vcpus[i].thread_started ? 1 : 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rn->pause_lock);
	__atomic_store_n(&rn->pause_req, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&rn->pause_lock);
	kick_all(rn);
	pthread_mutex_lock(&rn->pause_lock);
	while (rn->parked < started && !stopping(rn) && r == 0)
		r = pthread_cond_timedwait(&rn->pause_cond, &rn->pause_lock,
					   &until);
	if (rn->parked >= started)
		r = 0;
	pthread_mutex_unlock(&rn->pause_lock);
	return r ? -ETIMEDOUT : 0;
}

void runner_vcpus_resume(struct runner *rn)
{
	pthread_mutex_lock(&rn->pause_lock);
	__atomic_store_n(&rn->pause_req, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rn->pause_cond);
	pthread_mutex_unlock(&rn->pause_lock);
}

/*
 * The retire half of the device table (runner.h). A vCPU thread uses a
 * device only while it handles one exit, and its exit_seq is odd all that
 * time. The main thread has already unpublished the device (a sequentially
 * consistent store) when it reads the counters (sequentially consistent
 * loads): a thread whose counter is even then either ended its exit or had
 * not begun it, and then finds the table without the device. A thread whose
 * counter is odd may hold it: wait until its counter moves on. A vCPU in
 * KVM_RUN or parked by a pause holds nothing, so none is kicked out.
 */
void runner_vcpus_quiesce(struct runner *rn)
{
	for (unsigned int i = 0; i < rn->nvcpus; i++) {
		struct bh_vcpu *v = &rn->vcpus[i];
		unsigned long seq;
		struct timespec ts = { 0, 50000 };

		if (!v->thread_started)
			continue;
		seq = __atomic_load_n(&v->exit_seq, __ATOMIC_SEQ_CST);
		if (!(seq & 1))
			continue;
		/* An exit is short unless it waits for the controller; a
		 * short sleep keeps the main thread off the vCPU's core. */
		while (__atomic_load_n(&v->exit_seq, __ATOMIC_SEQ_CST) == seq)
			nanosleep(&ts, NULL);
	}
}

void runner_vcpus_log_state(struct runner *rn)
{
	if (bh_log_get_level() < BH_LOG_DEBUG)
		return;
	for (unsigned int i = 0; i < rn->nvcpus; i++) {
		struct kvm_regs regs;

		/* The vCPU may still be leaving KVM_RUN; then the registers
		 * cannot be read and that is said instead. */
		if (ioctl(rn->vcpus[i].fd, KVM_GET_REGS, &regs) < 0) {
			bh_debug("vCPU %u: registers unavailable: %s", i,
				 strerror(errno));
			continue;
		}
		bh_debug("vCPU %u: rip 0x%llx rsp 0x%llx rflags 0x%llx", i,
			 (unsigned long long)regs.rip,
			 (unsigned long long)regs.rsp,
			 (unsigned long long)regs.rflags);
	}
}
