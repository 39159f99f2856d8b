/* A stand-in for bulkhead-vcpu: it does the handshake and the set-up
 * exchange like the real runner, without KVM, then does as its --name says:
 *   flood    sends VIRTIO_RESET for device 0 without pause, reads nothing
 *   deaf     sends nothing, reads nothing
 *   hotplug  the runner's side of PCI hotplug with a guest that ejects at
 *            once: RUNNER_ADD_DEVICE is taken (refused with ERROR, as the
 *            runner does, for a busy index or slot, or an id that begins
 *            with "refuse"), STATS_REQUEST is answered, RUNNER_REMOVE_DEVICE
 *            is answered with RUNNER_DEVICE_REMOVED (never for an id that
 *            begins with "stuck": that guest does not eject), pause and
 *            quit work.
 *   migrate  hotplug's, and a guest for live migration: while it runs it
 *            writes the next generation into 16 MiB of guest RAM (from 128 MiB,
 * above the kernel) every 5 ms (each page's first and last words) and logs each
 * page in the dirty bitmap once RUNNER_DIRTY_LOG gave one, as KVM would; pause,
 * resume, SAVE (one vCPU), DIRTY_LOG and DIRTY_SYNC are answered; a restore
 * checks that every page holds the generation the guest wrote last ("stand-in
 * runner: RAM at generation N, consistent", or "RAM BAD" and an ERROR). In
 * every mode a device that brings memory (pmem) must bring it as the runner's
 * devmem.c wants it, and more strictly: its fd, a region aligned to 128 MiB at
 * or above 4 GiB and above RAM, ending by 1 TiB, within what the fd holds, and
 * meeting no other device's region. Each region is logged
 * ("stand-in runner: region ID 0xGPA+0xSIZE"); one that breaks a rule is
 * logged as "BAD REGION" and refused.
 * test_runner_stuck.py and test_hotplug_api.py put it beside a copy of
 * bulkhead as bulkhead-vcpu. */
#include <errno.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/spawn.h>

#include "proto/internal.pb-c.h"
#include "proto/state.pb-c.h"

#include "standin_probe.h"

/* The next frame from the controller, waiting as long as it takes. */
static int read_frame(int sock, struct bh_frame_reader *r, struct bh_frame *f)
{
	for (;;) {
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int n = bh_frame_read(sock, r, f);

		if (n != 0)
			return n < 0 ? n : 0;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
	}
}

/* What the hotplug mode knows of its devices, by index. */
#define STANDIN_MAX_DEVICES 16
static struct {
	bool used;
	unsigned int slot;
	char id[64];
	uint64_t gpa, size; /* its memory; size 0: none */
} devs[STANDIN_MAX_DEVICES];

/* RAM's end, from RUNNER_SETUP. */
static uint64_t ram_end;

/* The migrate mode's guest: guest RAM (its memfd and size), the pages it
 * writes, the dirty bitmap, whether it runs. */
#define GUEST_FIRST (128ULL << 20) /* memfd offset of the generation page */
#define GUEST_PAGES 4096	   /* pages written after it */
static int ram_fd = -1;
static uint64_t ram_size;
static uint64_t *guest; /* GUEST_FIRST.. mapped, (GUEST_PAGES + 1) pages */
static uint64_t *dirty_map;
static size_t dirty_len;
static bool guest_runs;
static uint64_t generation;
static bool restoring, restored_cpu, restored_vm;

static uint64_t *guest_map(void)
{
	size_t len = (GUEST_PAGES + 1) * 4096ULL;
	void *p;

	if (guest)
		return guest;
	if (ram_fd < 0 || ram_size < GUEST_FIRST + len)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd,
		 (off_t)GUEST_FIRST);
	if (p == MAP_FAILED)
		return NULL;
	guest = p;
	return guest;
}

static void log_page(uint64_t off)
{
	uint64_t bit = off / 4096;

	if (dirty_map && bit / 64 < dirty_len / 8)
		__atomic_fetch_or(&dirty_map[bit / 64], 1ULL << (bit % 64),
				  __ATOMIC_RELEASE);
}

/* One generation over the guest's pages: each page, then the generation
 * page, each logged after its write. */
static void guest_tick(void)
{
	uint64_t *g = guest_map();

	if (!g)
		return;
	generation++;
	for (uint64_t p = 1; p <= GUEST_PAGES; p++) {
		g[p * 512] = generation;
		g[p * 512 + 511] = generation ^ p;
		log_page(GUEST_FIRST + p * 4096);
	}
	g[0] = generation;
	log_page(GUEST_FIRST);
}

/* The restored RAM: every page of the last generation. */
static int guest_check(char *why, size_t len)
{
	uint64_t *g = guest_map();
	uint64_t gen;

	if (!g) {
		snprintf(why, len, "guest RAM cannot be mapped");
		return -1;
	}
	gen = g[0];
	if (gen == 0) {
		snprintf(why, len, "the guest never wrote");
		return -1;
	}
	for (uint64_t p = 1; p <= GUEST_PAGES; p++)
		if (g[p * 512] != gen || g[p * 512 + 511] != (gen ^ p)) {
			snprintf(why, len,
				 "page %" PRIu64 " holds generation %" PRIu64
				 ", the guest wrote %" PRIu64 " last",
				 p, g[p * 512], gen);
			return -1;
		}
	generation = gen;
	snprintf(why, len, "RAM at generation %" PRIu64 ", consistent", gen);
	return 0;
}

#define GIB	       (1ULL << 30)
#define REGION_ALIGN   (128ULL << 20) /* controller/layout.h */
#define REGION_LIMIT   (1ULL << 40)
#define REGION_GRANULE (2ULL << 20) /* controller/config.h */

/* What is wrong with a device's memory, or NULL. */
static const char *region_fault(const Bh__VirtioDevice *d,
				const struct bh_frame *f)
{
	static char why[96];
	const Bh__SharedRegion *r = d->shm;
	unsigned int fdi = 2 * d->num_queues;
	uint64_t end, have = 0;
	struct stat st;

	if (f->nfds != fdi + 1 || f->fds[fdi] < 0 ||
	    fstat(f->fds[fdi], &st) < 0)
		return "no fd";
	if (S_ISREG(st.st_mode))
		have = (uint64_t)st.st_size;
	else if (!S_ISBLK(st.st_mode) ||
		 ioctl(f->fds[fdi], BLKGETSIZE64, &have) < 0)
		return "the fd is no file";
	if (r->size == 0 || r->size % REGION_GRANULE ||
	    __builtin_add_overflow(r->guest_phys, r->size, &end))
		return "a bad size";
	if (r->guest_phys % REGION_ALIGN)
		return "not aligned";
	if (r->guest_phys < 4 * GIB || r->guest_phys < ram_end)
		return "below 4 GiB or RAM's end";
	if (end > REGION_LIMIT)
		return "past 1 TiB";
	if (have < r->size) {
		snprintf(why, sizeof(why), "the file holds %" PRIu64, have);
		return why;
	}
	for (unsigned int i = 0; i < STANDIN_MAX_DEVICES; i++) {
		if (devs[i].used && devs[i].size &&
		    r->guest_phys < devs[i].gpa + devs[i].size &&
		    devs[i].gpa < end) {
			snprintf(why, sizeof(why), "over %s's", devs[i].id);
			return why;
		}
	}
	return NULL;
}

/* RUNNER_ADD_DEVICE: 0, or -1 when it refuses it. After start, answered
 * with RUNNER_DEVICE_ADDED as the runner does; before it, a refusal is an
 * ERROR. */
static int add_device(int sock, const struct bh_frame *f, bool running)
{
	Bh__RunnerDeviceAdded ack = BH__RUNNER_DEVICE_ADDED__INIT;
	Bh__Error e = BH__ERROR__INIT;
	Bh__RunnerAddDevice *a;
	const Bh__VirtioDevice *d;
	const char *why = NULL;
	char msg[160];
	int r = 0;

	a = bh__runner_add_device__unpack(NULL, f->len, f->body);
	if (!a || !a->device)
		return -1;
	d = a->device;
	snprintf(msg, sizeof(msg), "add-device %s (index %u, slot %u): ", d->id,
		 d->index, d->pci_slot);
	if (d->index >= STANDIN_MAX_DEVICES || devs[d->index].used) {
		r = -EBUSY;
	} else if (running && strncmp(d->id, "refuse", 6) == 0) {
		r = -EIO;
	} else if (d->shm && (why = region_fault(d, f)) != NULL) {
		fprintf(stderr,
			"stand-in runner: BAD REGION %s 0x%" PRIx64
			"+0x%" PRIx64 ": %s\n",
			d->id, d->shm->guest_phys, d->shm->size, why);
		r = -EINVAL;
	} else if (!d->shm && f->nfds != 2 * d->num_queues) {
		r = -EINVAL;
	} else {
		for (unsigned int i = 0; i < STANDIN_MAX_DEVICES; i++)
			if (devs[i].used && devs[i].slot == d->pci_slot)
				r = -EBUSY;
	}
	if (r == 0) {
		devs[d->index].used = true;
		devs[d->index].slot = d->pci_slot;
		snprintf(devs[d->index].id, sizeof(devs[d->index].id), "%s",
			 d->id);
		devs[d->index].gpa = d->shm ? d->shm->guest_phys : 0;
		devs[d->index].size = d->shm ? d->shm->size : 0;
		if (d->shm)
			fprintf(stderr,
				"stand-in runner: region %s 0x%" PRIx64
				"+0x%" PRIx64 "\n",
				d->id, d->shm->guest_phys, d->shm->size);
	}
	ack.index = d->index;
	ack.pci_slot = d->pci_slot;
	bh__runner_add_device__free_unpacked(a, NULL);
	if (r < 0)
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s%s%s",
			 strerror(-r), why ? ": " : "", why ? why : "");
	if (running) {
		ack.error = -r;
		ack.message = r < 0 ? msg : (char *)"";
		bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_DEVICE_ADDED,
			      &ack.base, NULL, 0);
		return r < 0 ? -1 : 0;
	}
	if (r == 0)
		return 0;
	e.code = -r;
	e.message = msg;
	bh_frame_send(sock, BH__MSG_TYPE__MSG_ERROR, &e.base, NULL, 0);
	return -1;
}

static int set_up(int sock, struct bh_frame_reader *rp)
{
	Bh__RunnerReady ready = BH__RUNNER_READY__INIT;
	Bh__RunnerSetup *setup;
	struct bh_frame_reader r;
	struct bh_frame f;
	uint16_t type;
	int n;

	if (bh_hello_exchange(sock, "vcpu-runner", "controller") < 0)
		return -1;
	bh_frame_reader_init(&r, BH_FRAME_MAX_BODY);
	/* The host is probed at the first boot only. */
	n = read_frame(sock, &r, &f);
	if (n == 0 && f.type == BH__MSG_TYPE__MSG_RUNNER_PROBE) {
		if (standin_answer_probe_frame(sock, &f) < 0)
			return -1;
		n = read_frame(sock, &r, &f);
	}
	if (n < 0 || f.type != BH__MSG_TYPE__MSG_RUNNER_SETUP)
		return -1;
	/* Guest RAM is not needed, only where it ends. */
	setup = bh__runner_setup__unpack(NULL, f.len, f.body);
	if (!setup)
		return -1;
	ram_size = setup->memfd_size;
	if (f.nfds >= 1)
		ram_fd = bh_frame_take_fd(&f, 0);
	for (size_t i = 0; i < setup->n_regions; i++) {
		uint64_t end =
		    setup->regions[i]->guest_phys + setup->regions[i]->size;

		if (end > ram_end)
			ram_end = end;
	}
	bh__runner_setup__free_unpacked(setup, NULL);
	bh_frame_release(&f);
	ready.vcpus = 1;
	ready.kvm_info = "stand-in runner";
	if (bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_READY, &ready.base,
			  NULL, 0) < 0)
		return -1;
	/* The devices, a restore's state, then the start. */
	do {
		n = read_frame(sock, &r, &f);
		if (n < 0)
			return -1;
		type = f.type;
		if (type == BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE &&
		    add_device(sock, &f, false) < 0)
			return -1;
		if (type == BH__MSG_TYPE__MSG_RUNNER_RESTORE ||
		    type == BH__MSG_TYPE__MSG_RUNNER_RESTORE_CPU) {
			restoring = true;
			if (type == BH__MSG_TYPE__MSG_RUNNER_RESTORE)
				restored_vm = true;
			else
				restored_cpu = true;
			if (restored_vm && restored_cpu) {
				Bh__Empty done = BH__EMPTY__INIT;
				Bh__Error e = BH__ERROR__INIT;
				char why[160];

				if (guest_check(why, sizeof(why)) == 0) {
					fprintf(stderr, "stand-in runner: %s\n",
						why);
					bh_frame_send(
					    sock,
					    BH__MSG_TYPE__MSG_RUNNER_RESTORED,
					    &done.base, NULL, 0);
				} else {
					fprintf(stderr,
						"stand-in runner: RAM BAD: "
						"%s\n",
						why);
					e.code = EINVAL;
					e.message = why;
					bh_frame_send(sock,
						      BH__MSG_TYPE__MSG_ERROR,
						      &e.base, NULL, 0);
				}
			}
		}
		bh_frame_release(&f);
	} while (type == BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE ||
		 type == BH__MSG_TYPE__MSG_RUNNER_RESTORE ||
		 type == BH__MSG_TYPE__MSG_RUNNER_RESTORE_CPU);
	*rp = r;
	return type == BH__MSG_TYPE__MSG_RUNNER_START ? 0 : -1;
}

/* The migrate mode's messages: 1 handled, 0 not one of them, -1 fatal. */
static int serve_migrate(int sock, struct bh_frame *f)
{
	Bh__Empty empty = BH__EMPTY__INIT;
	Bh__DirtySynced synced = BH__DIRTY_SYNCED__INIT;

	switch (f->type) {
	case BH__MSG_TYPE__MSG_RUNNER_PAUSE:
		guest_runs = false;
		bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_PAUSED,
			      &empty.base, NULL, 0);
		return 1;
	case BH__MSG_TYPE__MSG_RUNNER_RESUME:
		guest_runs = true;
		return 1;
	case BH__MSG_TYPE__MSG_RUNNER_SAVE: {
		Bh__CpuState cpu = BH__CPU_STATE__INIT;
		Bh__RunnerSavedState st = BH__RUNNER_SAVED_STATE__INIT;

		cpu.id = 0;
		st.vcpus = 1;
		bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_SAVED_CPU,
			      &cpu.base, NULL, 0);
		bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_SAVED, &st.base,
			      NULL, 0);
		fprintf(stderr,
			"stand-in runner: saved at generation %" PRIu64 "\n",
			generation);
		return 1;
	}
	case BH__MSG_TYPE__MSG_RUNNER_DIRTY_LOG: {
		Bh__DirtyLog *d = bh__dirty_log__unpack(NULL, f->len, f->body);
		size_t want = (size_t)((ram_size / 4096 + 63) / 64 * 8);

		if (!d)
			return -1;
		if (dirty_map) {
			munmap(dirty_map, dirty_len);
			dirty_map = NULL;
		}
		if (d->enable) {
			void *p = f->nfds == 1
				      ? mmap(NULL, want, PROT_READ | PROT_WRITE,
					     MAP_SHARED, f->fds[0], 0)
				      : MAP_FAILED;

			if (p == MAP_FAILED) {
				bh__dirty_log__free_unpacked(d, NULL);
				return -1;
			}
			dirty_map = p;
			dirty_len = want;
		}
		fprintf(stderr, "stand-in runner: dirty log %s\n",
			d->enable ? "on" : "off");
		bh__dirty_log__free_unpacked(d, NULL);
		bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_DIRTY_LOG_DONE,
			      &empty.base, NULL, 0);
		return 1;
	}
	case BH__MSG_TYPE__MSG_RUNNER_DIRTY_SYNC:
		synced.pages = 0;
		bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_DIRTY_SYNCED,
			      &synced.base, NULL, 0);
		return 1;
	default:
		return 0;
	}
}

static bool migrate_mode;

/* The next frame, the guest writing meanwhile while it runs (the socket
 * blocks: it is read only once poll says there is something). */
static int read_frame_guest(int sock, struct bh_frame_reader *r,
			    struct bh_frame *f)
{
	for (;;) {
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int n;

		if (poll(&p, 1, migrate_mode && guest_runs ? 5 : -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) {
			if (migrate_mode && guest_runs)
				guest_tick();
			continue;
		}
		n = bh_frame_read(sock, r, f);
		if (n != 0)
			return n < 0 ? n : 0;
	}
}

/* The hotplug mode's loop, until QUIT. */
static int serve_hotplug(int sock, struct bh_frame_reader *r)
{
	Bh__RunnerDeviceRemoved done = BH__RUNNER_DEVICE_REMOVED__INIT;
	Bh__ExitStats stats = BH__EXIT_STATS__INIT;
	Bh__Empty empty = BH__EMPTY__INIT;
	Bh__RunnerRemoveDevice *rm;
	struct bh_frame f;
	int n;

	for (;;) {
		n = read_frame_guest(sock, r, &f);
		if (n < 0)
			return 1;
		if (migrate_mode) {
			int h = serve_migrate(sock, &f);

			if (h < 0)
				return 1;
			if (h > 0) {
				bh_frame_release(&f);
				continue;
			}
		}
		switch (f.type) {
		case BH__MSG_TYPE__MSG_RUNNER_ADD_DEVICE:
			add_device(sock, &f, true);
			break;
		case BH__MSG_TYPE__MSG_STATS_REQUEST:
			bh_frame_send(sock, BH__MSG_TYPE__MSG_EXIT_STATS,
				      &stats.base, NULL, 0);
			break;
		case BH__MSG_TYPE__MSG_RUNNER_REMOVE_DEVICE:
			rm = bh__runner_remove_device__unpack(NULL, f.len,
							      f.body);
			if (!rm || rm->index >= STANDIN_MAX_DEVICES ||
			    !devs[rm->index].used)
				return 1;
			fprintf(stderr, "stand-in runner: remove %s\n",
				devs[rm->index].id);
			if (strncmp(devs[rm->index].id, "stuck", 5) != 0) {
				done.index = rm->index;
				done.pci_slot = devs[rm->index].slot;
				devs[rm->index].used = false;
				devs[rm->index].size = 0;
				bh_frame_send(
				    sock,
				    BH__MSG_TYPE__MSG_RUNNER_DEVICE_REMOVED,
				    &done.base, NULL, 0);
			}
			bh__runner_remove_device__free_unpacked(rm, NULL);
			break;
		case BH__MSG_TYPE__MSG_RUNNER_PAUSE:
			bh_frame_send(sock, BH__MSG_TYPE__MSG_RUNNER_PAUSED,
				      &empty.base, NULL, 0);
			break;
		case BH__MSG_TYPE__MSG_QUIT:
			bh_frame_release(&f);
			return 0;
		default:
			break;
		}
		bh_frame_release(&f);
	}
}

int main(int argc, char **argv)
{
	const char *mode = "";
	int sock = BH_CHILD_FD_CONTROL;
	struct bh_frame_reader r;

	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--name") == 0)
			mode = argv[i + 1];
	if (set_up(sock, &r) < 0) {
		fprintf(stderr, "stand-in runner: set-up failed\n");
		return 1;
	}
	fprintf(stderr, "stand-in runner: started, now %s\n", mode);
	if (strcmp(mode, "hotplug") == 0)
		return serve_hotplug(sock, &r);
	if (strcmp(mode, "migrate") == 0) {
		migrate_mode = true;
		/* A restored VM starts parked, a booted one runs. */
		guest_runs = !restoring;
		return serve_hotplug(sock, &r);
	}
	if (strcmp(mode, "flood") == 0) {
		Bh__VirtioDeviceRef ref = BH__VIRTIO_DEVICE_REF__INIT;

		ref.index = 0;
		while (bh_frame_send(sock, BH__MSG_TYPE__MSG_VIRTIO_RESET,
				     &ref.base, NULL, 0) == 0)
			;
		return 1;
	}
	/* deaf: the controller's SIGKILL ends it (or its parent-death
	 * signal); poll, because the controller's filter has no pause. */
	for (;;)
		poll(NULL, 0, -1);
}
