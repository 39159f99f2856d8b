/* The host check: what /dev/kvm offers, and how fast a probe guest runs on
 * it. A KVM that opens and answers every ioctl may still run guest code
 * through its instruction emulator (kvm_pvm without VMX/SVM, for one), where
 * a stock kernel never finishes booting; only running guest code tells. The
 * runner measures; the controller judges (controller/hostcheck.c). Runs
 * before the sandbox is entered. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include <bulkhead/log.h>
#include <bulkhead/platform.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/util.h>

#include "probe.h"
#include "runner.h"

/* The probe guest's memory: page tables, then the code. */
#define PROBE_MEM_SIZE	0x10000
#define PROBE_PML4	0x1000
#define PROBE_PDPT	0x2000
#define PROBE_PD	0x3000
#define PROBE_CODE	0x4000
#define PROBE_DONE_PORT 0x80

#define PTE_P  0x1ULL
#define PTE_RW 0x2ULL
#define PTE_PS 0x80ULL

#define CR0_PE	 0x1ULL
#define CR0_ET	 0x10ULL
#define CR0_PG	 0x80000000ULL
#define CR4_PAE	 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

/* After the deadline, the watcher kicks the probe vCPU this often until
 * KVM_RUN has returned: one kick that lands just before KVM_RUN is caught by
 * immediate_exit, but a later one costs nothing. */
#define PROBE_REKICK_NS 20000000ULL

/* The probe vCPU is stopped the way vCPU threads are kicked (vcpu.c), so
 * that the probe needs no system call the runner does not make anyway. */
#define PROBE_SIGNAL BH_RUNNER_KICK_SIGNAL

struct probe_watch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t target;
	struct kvm_run *run;
	uint64_t deadline; /* bh_now_ns() */
	int done;
};

static void probe_kicked(int sig)
{
	(void)sig;
}

static void add_ns(struct timespec *ts, uint64_t ns)
{
	ns += (uint64_t)ts->tv_nsec;
	ts->tv_sec += (time_t)(ns / 1000000000ULL);
	ts->tv_nsec = (long)(ns % 1000000000ULL);
}

/* Waits for the deadline, then stops the probe vCPU until it is done. */
static void *probe_watcher(void *arg)
{
	struct probe_watch *w = arg;
	struct timespec ts;
	uint64_t now = bh_now_ns();

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (w->deadline > now)
		add_ns(&ts, w->deadline - now);
	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) !=
			ETIMEDOUT ||
		    w->done)
			continue;
		__atomic_store_n(&w->run->immediate_exit, 1, __ATOMIC_RELEASE);
		pthread_kill(w->target, PROBE_SIGNAL);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		add_ns(&ts, PROBE_REKICK_NS);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code ? 1 : 0;
	s->db = code ? 0 : 1;
}

/* Long mode, identity-mapped first 2 MiB, the loop at PROBE_CODE: chunks
 * of a counted loop, each ended by an exit to the runner, so that the
 * runner times every chunk and the fastest tells the speed even where the
 * host preempts the vCPU now and then (the emulated KVM host of the tests,
 * on a busy machine). */
static int probe_vcpu_init(int vcpu, uint8_t *mem, uint32_t chunks,
			   uint32_t iterations)
{
	static const uint8_t loop[] = {
		0xbb, 0,
		0,    0,
		0, /* 0: mov ebx, chunks */
		0xb9, 0,
		0,    0,
		0,		       /* 5: mov ecx, iterations */
		0xff, 0xc9,	       /* 10: dec ecx */
		0x75, 0xfc,	       /* 12: jnz 10 */
		0xe6, PROBE_DONE_PORT, /* 14: out 0x80, al: a chunk done */
		0xff, 0xcb,	       /* 16: dec ebx */
		0x75, 0xf1,	       /* 18: jnz 5 */
		0xf4,		       /* 20: hlt: all done */
	};
	uint64_t *pml4 = (uint64_t *)(mem + PROBE_PML4);
	uint64_t *pdpt = (uint64_t *)(mem + PROBE_PDPT);
	uint64_t *pd = (uint64_t *)(mem + PROBE_PD);
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	pml4[0] = PROBE_PDPT | PTE_P | PTE_RW;
	pdpt[0] = PROBE_PD | PTE_P | PTE_RW;
	pd[0] = 0 | PTE_P | PTE_RW | PTE_PS;
	memcpy(mem + PROBE_CODE, loop, sizeof(loop));
	memcpy(mem + PROBE_CODE + 1, &chunks, sizeof(chunks));
	memcpy(mem + PROBE_CODE + 6, &iterations, sizeof(iterations));

	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	seg(&sregs.cs, 0x8, 0xb, 1);
	seg(&sregs.ds, 0x10, 0x3, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.limit = 0x67;
	sregs.tr.type = 0xb; /* busy 64-bit TSS */
	sregs.tr.present = 1;
	sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
	sregs.cr3 = PROBE_PML4;
	sregs.cr4 = CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	regs.rip = PROBE_CODE;
	regs.rflags = 0x2;
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* The host CPU's vendor string, CPUID leaf 0. */
static void host_vendor(char out[13])
{
	uint32_t a = 0, b, c, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
	memcpy(out, &b, 4);
	memcpy(out + 4, &d, 4);
	memcpy(out + 8, &c, 4);
	out[12] = '\0';
}

/* One timed stretch of the loop; the fastest is kept. */
static void probe_sample(struct runner_probe *p, uint64_t insns, uint64_t ns)
{
	if (!ns)
		ns = 1;
	/* insns / ns > best_done / best_ns, without a division. */
	if (!p->best_ns || (unsigned __int128)insns * p->best_ns >
			       (unsigned __int128)p->best_done * ns) {
		p->best_done = insns;
		p->best_ns = ns;
	}
}

static void probe_fail(struct runner_probe *p, const char *what, int err)
{
	snprintf(p->error, sizeof(p->error), "%s: %s", what, strerror(err));
}

/*
 * Runs the probe guest in a VM of its own until it is done or the deadline
 * passes, and records how many of its instructions ran in how long.
 */
static void probe_speed(struct runner *rn, size_t run_size,
			struct runner_probe *p)
{
	struct sigaction sa, old_sa;
	sigset_t set, old_set;
	struct probe_watch w = { .done = 0 };
	pthread_condattr_t ca;
	pthread_t watcher;
	struct kvm_userspace_memory_region mr;
	struct kvm_run *run = MAP_FAILED;
	struct kvm_regs regs;
	int have_watcher = 0, have_sa = 0, r;
	uint8_t *mem;
	uint64_t start, now, chunk_start;
	int vm = -1, vcpu = -1;

	p->planned = 2ULL * BH_PROBE_CHUNKS * BH_PROBE_ITERATIONS;
	mem = mmap(NULL, PROBE_MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		probe_fail(p, "mmap", errno);
		return;
	}
	vm = ioctl(rn->kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		probe_fail(p, "KVM_CREATE_VM", errno);
		goto out;
	}
	/* Harmless where unused; Intel without unrestricted guests wants it. */
	(void)ioctl(vm, KVM_SET_TSS_ADDR, (unsigned long)BH_KVM_TSS_ADDR);
	memset(&mr, 0, sizeof(mr));
	mr.memory_size = PROBE_MEM_SIZE;
	mr.userspace_addr = (uint64_t)(uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
		probe_fail(p, "KVM_SET_USER_MEMORY_REGION", errno);
		goto out;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		probe_fail(p, "KVM_CREATE_VCPU", errno);
		goto out;
	}
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		probe_fail(p, "mmap of the vCPU", errno);
		goto out;
	}
	r = probe_vcpu_init(vcpu, mem, BH_PROBE_CHUNKS, BH_PROBE_ITERATIONS);
	if (r < 0) {
		probe_fail(p, "setting up the probe vCPU", -r);
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_kicked;
	sigemptyset(&sa.sa_mask);
	if (sigaction(PROBE_SIGNAL, &sa, &old_sa) < 0) {
		probe_fail(p, "sigaction", errno);
		goto out;
	}
	have_sa = 1;
	sigemptyset(&set);
	sigaddset(&set, PROBE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, &old_set);

	start = bh_now_ns();
	w.target = pthread_self();
	w.run = run;
	w.deadline = start + p->deadline_ns;
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&w.cond, &ca) != 0) {
		probe_fail(p, "pthread_cond_init", EINVAL);
		goto out;
	}
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&w.lock, NULL);
	r = pthread_create(&watcher, NULL, probe_watcher, &w);
	if (r != 0) {
		pthread_cond_destroy(&w.cond);
		pthread_mutex_destroy(&w.lock);
		probe_fail(p, "pthread_create", r);
		goto out;
	}
	have_watcher = 1;
	chunk_start = start;
	for (;;) {
		int rr = ioctl(vcpu, KVM_RUN, 0);

		now = bh_now_ns();
		if (rr < 0 && errno == EINTR) {
			if (now - start >= p->deadline_ns)
				break;
			/* A stray signal, not the deadline's. */
			__atomic_store_n(&run->immediate_exit, 0,
					 __ATOMIC_RELEASE);
			continue;
		}
		if (rr < 0) {
			probe_fail(p, "KVM_RUN", errno);
			goto out;
		}
		if (run->exit_reason == KVM_EXIT_IO &&
		    run->io.port == PROBE_DONE_PORT &&
		    run->io.direction == KVM_EXIT_IO_OUT) {
			probe_sample(p, 2ULL * BH_PROBE_ITERATIONS,
				     now - chunk_start);
			p->done += 2ULL * BH_PROBE_ITERATIONS;
			chunk_start = now;
			if (now - start >= p->deadline_ns)
				break;
			continue;
		}
		if (run->exit_reason == KVM_EXIT_HLT && p->done == p->planned) {
			p->ns = now - start;
			p->ran = 1;
			goto out;
		}
		/* Anything else is a KVM that did not run the code as a
		 * CPU would. */
		snprintf(p->error, sizeof(p->error),
			 "the probe guest stopped with exit reason %u",
			 run->exit_reason);
		goto out;
	}
	/* The deadline, in a chunk or between two: what ran of the chunk
	 * counts too (ecx counts down), which is all a slow KVM shows. */
	p->ns = now - start;
	if (ioctl(vcpu, KVM_GET_REGS, &regs) < 0) {
		probe_fail(p, "KVM_GET_REGS", errno);
		goto out;
	}
	if ((regs.rcx & 0xffffffffULL) > BH_PROBE_ITERATIONS) {
		snprintf(p->error, sizeof(p->error),
			 "the probe guest's counter is 0x%llx, not at most %u",
			 (unsigned long long)regs.rcx, BH_PROBE_ITERATIONS);
		goto out;
	}
	if (p->done < p->planned && now > chunk_start) {
		uint64_t part =
		    2ULL * (BH_PROBE_ITERATIONS - (regs.rcx & 0xffffffffULL));

		/* 0 left of ecx between out and the next chunk: nothing of a
		 * new chunk ran. */
		if (regs.rcx & 0xffffffffULL) {
			probe_sample(p, part, now - chunk_start);
			p->done += part;
		}
	}
	p->ran = 1;
out:
	if (have_watcher) {
		pthread_mutex_lock(&w.lock);
		w.done = 1;
		pthread_cond_signal(&w.cond);
		pthread_mutex_unlock(&w.lock);
		pthread_join(watcher, NULL);
		pthread_cond_destroy(&w.cond);
		pthread_mutex_destroy(&w.lock);
	}
	if (have_sa) {
		pthread_sigmask(SIG_SETMASK, &old_set, NULL);
		sigaction(PROBE_SIGNAL, &old_sa, NULL);
	}
	if (run != MAP_FAILED)
		munmap(run, run_size);
	bh_closep(&vcpu);
	/* The probe VM stays until the VM proper exists: destroying the only
	 * VM makes KVM turn virtualization off on every CPU, and the next
	 * VM on again, by IPIs that an emulated KVM host has been seen to
	 * wedge in. */
	if (vm >= 0) {
		runner_probe_release(rn);
		rn->probe_vm = vm;
		rn->probe_mem = mem;
	} else {
		munmap(mem, PROBE_MEM_SIZE);
	}
}

void runner_probe_release(struct runner *rn)
{
	bh_closep(&rn->probe_vm);
	if (rn->probe_mem)
		munmap(rn->probe_mem, PROBE_MEM_SIZE);
	rn->probe_mem = NULL;
}

int runner_kvm_probe(struct runner *rn, const uint32_t *caps, size_t ncaps,
		     struct runner_probe *p)
{
	long run_size;
	int v;

	memset(p, 0, sizeof(*p));
	p->deadline_ns = BH_PROBE_DEADLINE_MS * 1000000ULL;
	if (ncaps > BH_PROBE_MAX_CAPS)
		return -EINVAL;
	if (rn->kvm < 0) {
		rn->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (rn->kvm < 0) {
			p->open_errno = errno;
			return 0;
		}
	}
	v = ioctl(rn->kvm, KVM_GET_API_VERSION, 0);
	p->api_version = v;
	for (size_t i = 0; i < ncaps; i++) {
		p->caps[i] =
		    ioctl(rn->kvm, KVM_CHECK_EXTENSION, (unsigned long)caps[i]);
		if (p->caps[i] < 0)
			p->caps[i] = 0;
	}
	p->ncaps = ncaps;
	if (v != KVM_API_VERSION) {
		snprintf(p->error, sizeof(p->error),
			 "KVM API version %d, not %d: no probe guest", v,
			 KVM_API_VERSION);
		return 0;
	}
	host_vendor(p->vendor);
	run_size = ioctl(rn->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (long)sizeof(struct kvm_run)) {
		probe_fail(p, "KVM_GET_VCPU_MMAP_SIZE", errno);
		return 0;
	}
	probe_speed(rn, (size_t)run_size, p);
	if (p->ran)
		bh_debug("probe guest: %llu of %llu instructions in %llu us",
			 (unsigned long long)p->done,
			 (unsigned long long)p->planned,
			 (unsigned long long)(p->ns / 1000));
	return 0;
}
