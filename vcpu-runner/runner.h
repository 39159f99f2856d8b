/* The vCPU runner's context: one struct, passed explicitly. */
#ifndef BH_RUNNER_H
#define BH_RUNNER_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>

#include <bulkhead/frame.h>
#include <bulkhead/limits.h>

#include "cmos.h"
#include "exitstats.h"
#include "hotplug.h"
#include "iobus.h"
#include "pci.h"
#include "uart.h"
#include "virtio_pci.h"
#include "proto/internal.pb-c.h"

enum runner_state {
	RS_CONFIG = 0, /* waiting for RUNNER_SETUP */
	RS_READY,      /* VM built and sandboxed, waiting for RUNNER_START */
	RS_RUNNING,    /* vCPUs run */
	RS_PAUSED,     /* vCPUs parked by RUNNER_PAUSE */
	RS_STOPPED,    /* a guest event ended the run */
};

struct runner;

struct bh_vcpu {
	struct runner *rn;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	int thread_started;
	/* Odd while the thread handles an exit (atomic): see
	 * runner_vcpus_quiesce. */
	unsigned long exit_seq;
	struct bh_exitstats stats;
};

/* A device's memory (virtio-pmem's region) in its own KVM slot. */
struct runner_devmem {
	uint8_t *addr; /* NULL: none */
	uint64_t gpa;
	uint64_t size;
};

/* MSRs a vCPU's saved state may hold, at most. */
#define RUNNER_MAX_MSRS 512

/* RAM takes KVM slots 0 and 1; device index i's memory takes this + i. */
#define RUNNER_DEVMEM_SLOT0 2

struct runner {
	int ctl;     /* socketpair to the controller (fd 3) */
	int wake_fd; /* eventfd: vCPU threads wake the main loop */
	pthread_mutex_t send_lock;
	enum runner_state state;
	int quit;

	int kvm;
	int vm;
	int probe_vm;	 /* the host check's VM, until vm exists */
	void *probe_mem; /* its memory */
	size_t run_size;
	uint8_t *ram;
	size_t ram_size;
	/* Where RAM is in guest-physical space, for the device memory's
	 * checks. */
	uint64_t ram_gpa[2];
	uint64_t ram_len[2];
	uint64_t ram_off[2]; /* each RAM slot's offset in the memfd */
	unsigned int nram;
	/* Dirty logging (RUNNER_DIRTY_LOG), main thread only: the
	 * controller's bitmap, NULL while off, and KVM_GET_DIRTY_LOG's
	 * buffer for each RAM slot. */
	uint64_t *dirty;
	uint64_t dirty_bytes;
	uint64_t *kvm_dirty[2];
	struct runner_devmem devmem[BH_MAX_DEVICES];
	unsigned int nvcpus;
	struct bh_vcpu *vcpus;
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID */
	/* KVM_GET_MSR_INDEX_LIST, less those no vCPU can read: what a saved
	 * vCPU holds. */
	uint32_t msrs[RUNNER_MAX_MSRS];
	unsigned int nmsrs;
	/* A restore set the state (RUNNER_RESTORE): the vCPUs start
	 * parked, and the vCPU states still to come. */
	int restored;
	unsigned int cpus_restored;
	char vendor[13];

	struct bh_iobus iobus;
	int have_uart;
	struct bh_uart uart;
	struct bh_cmos cmos;
	struct bh_pci pci;
	/*
	 * Devices by the controller's index; NULL where there is none. Only
	 * the main thread adds and removes, while vCPU threads look devices
	 * up on their MMIO exits. A device is published with a release
	 * store once it is complete and read with acquire loads; to retire
	 * one, the main thread unpublishes it, waits until no vCPU thread can
	 * still be inside one of its handlers (runner_vcpus_quiesce), and
	 * only then frees it. No lock on the exit path: a vCPU never waits
	 * for an add or a remove.
	 */
	struct bh_vpci *vdevs[BH_MAX_DEVICES];
	uint32_t removed;	    /* indices removed and not added again */
	pthread_mutex_t route_lock; /* KVM_SET_GSI_ROUTING */
	struct bh_hotplug hotplug;

	pthread_barrier_t start;
	/* Every vCPU thread has begun to run: glibc has set it up (rseq,
	 * set_robust_list), which the seccomp filter would refuse. */
	pthread_barrier_t ready;
	int start_released;
	int stopping; /* vCPUs leave their loop (atomic) */
	/* Pause: vCPU threads park on pause_cond while pause_req is set. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	int pause_req; /* atomic; written under pause_lock */
	unsigned int parked;
	int event_sent;	    /* one guest event per run (atomic) */
	uint64_t start_ns;  /* CLOCK_MONOTONIC when the runner started */
	int first_run_seen; /* the first KVM_RUN was logged (atomic) */
};

/* main.c: send a frame to the controller; safe from any thread. */
int runner_send(struct runner *rn, uint16_t type, const ProtobufCMessage *msg);

/* kvm.c */
int runner_kvm_open(struct runner *rn);
int runner_kvm_map_memory(struct runner *rn, int memfd, uint64_t memfd_size,
			  Bh__MemRegion *const *regions, size_t nregions);
int runner_vcpus_create(struct runner *rn, unsigned int nvcpus,
			const Bh__VcpuState *boot);
/* Dirty logging of every RAM slot (not device memory) into map (bytes long,
 * from bh_dirty_map): taken on success, the caller's to unmap on failure,
 * when KVM refused a slot (the slots are as they were then). With logging
 * on already, only the bitmap is replaced. 0 or -errno (logged). */
int runner_kvm_dirty_start(struct runner *rn, uint64_t *map, uint64_t bytes);
/* Logging off in every RAM slot, the bitmap unmapped; nothing if off. */
void runner_kvm_dirty_stop(struct runner *rn);
/* KVM_GET_DIRTY_LOG of every RAM slot (which clears KVM's log and protects
 * the pages again) folded into the bitmap; *pages: the pages KVM reported.
 * 0 or -errno (logged). Logging must be on. */
int runner_kvm_dirty_sync(struct runner *rn, uint64_t *pages);

/* vcpu.c */
int runner_vcpus_start_threads(struct runner *rn);
void runner_vcpus_release(struct runner *rn);
void runner_vcpus_stop(struct runner *rn);
/* Takes every vCPU out of KVM_RUN and parks it; 0 once all are parked, or
 * -ETIMEDOUT after timeout_ms (the pause then stays requested). */
int runner_vcpus_pause(struct runner *rn, int timeout_ms);
void runner_vcpus_resume(struct runner *rn);
/* Returns once every vCPU thread that was handling an exit when it was
 * called has finished that exit: what it unpublished before is then out of
 * every vCPU thread's reach. Main thread only. */
void runner_vcpus_quiesce(struct runner *rn);
/* Logs where each vCPU stands (debug level), e.g. when a guest hangs. */
void runner_vcpus_log_state(struct runner *rn);
void runner_guest_event(struct runner *rn, Bh__GuestEvent__Kind kind,
			unsigned int vcpu, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* platform.c */
int runner_platform_init(struct runner *rn, int serial);

/* devices.c: hotplug on the main thread. */
extern const struct bh_hotplug_ops runner_hotplug_ops;
/* Removes the device at index: unpublished, vCPUs quiesced, torn down and
 * freed, then RUNNER_DEVICE_REMOVED sent. */
int runner_device_remove(struct runner *rn, uint32_t index);
/* Removes what the guest ejected (after a wake-up). */
void runner_hotplug_reap(struct runner *rn);

/* devmem.c */
/* Whether index may map size bytes at gpa: 2 MiB aligned, above 4 GiB,
 * clear of RAM and of the other devices' memory. 0, -EBUSY when index has
 * memory already, else -EINVAL. */
int runner_devmem_check(const struct runner *rn, uint32_t index, uint64_t gpa,
			uint64_t size);
/* Maps r from fd (taken: closed in every case) and gives it a KVM slot.
 * 0 or -errno (logged). */
int runner_devmem_add(struct runner *rn, uint32_t index,
		      const Bh__SharedRegion *r, int fd);
/* Deletes index's slot and unmaps its memory; nothing if it has none. */
void runner_devmem_remove(struct runner *rn, uint32_t index);

/* seccomp.c */
int runner_seccomp_install(void);
void runner_seccomp_print(FILE *out);

#endif
