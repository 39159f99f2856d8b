/* The VM lifecycle in the controller: build guest RAM and boot images, start
 * the vCPU runner, relay its serial bytes, act on guest events, reboot. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <bulkhead/dispatch.h>
#include <bulkhead/frame.h>
#include <bulkhead/hello.h>
#include <bulkhead/log.h>
#include <bulkhead/platform.h>
#include <bulkhead/sendq.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "acpi.h"
#include "boot.h"
#include "bzimage.h"
#include "console.h"
#include "devices.h"
#include "dirty.h"
#include "exitlog.h"
#include "guestmem.h"
#include "hostcheck.h"
#include "launcher.h"
#include "layout.h"
#include "sdnotify.h"
#include "kmsg.h"
#include "vm.h"
#include "vmapi.h"
#include "snapshot.h"

#define KERNEL_MAX_SIZE	     (512ULL * BH_MIB)
#define RUNNER_SETUP_TIMEOUT 30000 /* ms, handshake and VM construction */
#define RUNNER_EXIT_TIMEOUT  3000  /* ms, after QUIT before SIGKILL */
/* ms the probe's answer may take beyond the probe's own deadline */
#define RUNNER_PROBE_SLACK 3000
#define RUNNER_BINARY	   "bulkhead-vcpu"
/* SIGTERM: how long the guest has to power off after the power button. */
#define TERM_GRACE_S 30

/* ms the runner's socket may stay full, taking nothing, before the runner
 * counts as stuck and is killed. Above the 2 s the runner may take to pause
 * its vCPUs, during which it reads nothing. */
#define RUNNER_SEND_TIMEOUT 5000
/* Bytes of frames for the runner that may wait beyond what its socket
 * holds: far more than the controller sends in RUNNER_SEND_TIMEOUT unless
 * the runner stopped reading, and at least the largest frame. */
#define RUNNER_QUEUE_MAX (1024 * 1024)
/* Frames taken from the runner per wake-up of the loop, so that a runner
 * that never stops sending cannot starve the API, signals and workers. */
#define RUNNER_FRAMES_PER_WAKE 64

enum runner_conn_state {
	CS_NONE = 0,
	CS_SETUP,    /* waiting for RUNNER_READY */
	CS_RUNNING,  /* guest runs */
	CS_STOPPING, /* QUIT sent, draining until the runner exits */
};

enum after_stop {
	AFTER_NOTHING = 0,
	AFTER_POWEROFF,
	AFTER_REBOOT,
	AFTER_CRASH,
	AFTER_SIGNAL,	/* stopped by SIGINT/SIGTERM/SIGHUP */
	AFTER_SHUTDOWN, /* the API's shutdown: stay up */
	AFTER_EXIT,	/* the API's shutdown-vmm: exit 0 */
};

struct bh_vm {
	/* The process's options (--api-socket, --name, ...), and the VM's
	 * configuration: the same struct for a VM from the command line,
	 * own_cfg for one created through the API, NULL without a VM. */
	const struct bh_config *proc_cfg;
	const struct bh_config *cfg;
	struct bh_config own_cfg;
	bool own_cfg_set;
	bool booted; /* since create: Created until the first boot */
	struct bh_console console;
	struct bh_devices *devs;
	char runner_path[4096];
	/* Where the runner and the workers are: decided once, at start-up
	 * (bh_child_dir), before the sandbox closes /proc/self/exe. */
	char child_dir[4096];

	/* The images stay open, not in memory: each boot (reboots too)
	 * reads them again into kernel and initramfs and frees those once
	 * they are in guest RAM. */
	int kernel_fd;
	int initramfs_fd;
	uint8_t *kernel;
	size_t kernel_len;
	uint8_t *initramfs;
	size_t initramfs_len;
	struct bh_bzimage bz;

	struct bh_guest_mem mem;
	unsigned int boots;

	pid_t runner_pid;
	int ctl;
	enum runner_conn_state cs;
	struct bh_frame_reader reader;
	/* Frames for the runner that its socket has not taken yet: nothing
	 * the controller sends waits for the runner to read. out_ev watches
	 * for room while any wait; out_timer ends a runner that takes
	 * nothing for RUNNER_SEND_TIMEOUT, or whose queue overflowed
	 * (out_failed says why; the kill waits for the loop, outside any
	 * handler). */
	struct bh_sendq outq;
	struct event *out_ev;
	struct event *out_timer;
	const char *out_failed;
	char out_why[96];
	enum after_stop after;
	bool paused;	    /* the runner parked the vCPUs */
	bool pause_pending; /* RUNNER_PAUSE sent, the pause not complete */
	bool runner_paused; /* RUNNER_PAUSED came: the workers are asked */
	/* A device added while the VM runs (bh_vm_add_device), until the
	 * runner's RUNNER_DEVICE_ADDED answers. */
	bool add_pending;
	unsigned int add_index;

	struct bh_vmapi *api; /* NULL without --api-socket */

	struct event_base *base;
	struct event *ctl_ev;
	struct event *stdin_ev;
	bool stdin_eof; /* no more input: the event stays off */
	struct event *sig_ev[3];
	int signal_code; /* 128 + signal, with AFTER_SIGNAL */
	/* SIGTERM pressed the power button: the process ends with the VM,
	 * or when term_ev fires first. */
	bool terminating;
	struct event *term_ev;
	int exit_code;

	/* Privileges and the seccomp filter, once the loop and the API are
	 * set up (bh_vm_set_lockdown). */
	int (*lockdown)(void *arg);
	void *lockdown_arg;
	struct bh_kmsg *kmsg; /* names what killed a child with SIGSYS */

	/* The host's KVM is judged once, at the first boot: a runner probes
	 * it before it builds the VM (hostcheck.c). */
	struct bh_host_facts facts;
	bool kvm_checked;
	bool host_refused; /* the verdict was no: exit BH_EXIT_USAGE */
	char refusal[768];
	struct bh_launcher *launcher; /* starts the children; borrowed */
	struct event *launcher_ev;

	/* A snapshot under way (bh_vm_snapshot): the vCPU states the runner
	 * has sent so far, and the devices' part, until RUNNER_SAVED. */
	struct {
		bool pending;
		char dir[4096];
		Bh__CpuState **cpus;
		unsigned int ncpus;
		Bh__DeviceSnapshot **devs;
		size_t ndevs;
	} snap;
	/* The snapshot the VM's next boot restores (owned), and that boot's
	 * progress: RUNNER_RESTORED came, or an error did. */
	struct bh_snapshot_in *restore;
	bool restore_done;
	bool restore_failed;
	bool restore_refused; /* its RAM was damaged: exit BH_EXIT_USAGE */

	/* Live migration's hooks (migrate.c): a pause it asked for is
	 * complete or failed; the state it asked for is gathered; the runner
	 * is gone (the VM stopped or reboots: the migration cannot go on). */
	bh_vm_done_fn pause_cb;
	void *pause_arg;
	bh_vm_state_fn state_cb;
	void *state_arg;
	void (*gone_cb)(void *arg);
	void *gone_arg;
};

static void stdin_hold(struct bh_vm *vm, bool hold);
static void snap_fail(struct bh_vm *vm, const char *why);
static void snap_clear(struct bh_vm *vm);
static void pause_failed(struct bh_vm *vm, const char *why);
static int runner_send_empty(struct bh_vm *vm, Bh__MsgType type);

/* ---- images and guest RAM ---------------------------------------------- */

static int read_image(const char *opt, const char *path, int fd, size_t max,
		      uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	int r = bh_read_fd(fd, max, buf, len);

	if (r == -EFBIG)
		snprintf(err, errlen, "%s: '%s' is larger than %zu MiB", opt,
			 path, (size_t)(max / BH_MIB));
	else if (r == -EINVAL)
		snprintf(err, errlen, "%s: '%s' is not a regular file", opt,
			 path);
	else if (r < 0)
		snprintf(err, errlen, "%s: cannot read '%s': %s", opt, path,
			 strerror(-r));
	return r;
}

static void images_free(struct bh_vm *vm)
{
	free(vm->kernel);
	vm->kernel = NULL;
	free(vm->initramfs);
	vm->initramfs = NULL;
}

/* Reads the kernel and initramfs from their open files (again, at every
 * boot: the controller keeps only the fds between boots) and parses the
 * kernel's header into vm->bz. */
static int images_read(struct bh_vm *vm, char *err, size_t errlen)
{
	const struct bh_config *cfg = vm->cfg;
	int r;

	r = read_image("--kernel", cfg->kernel, vm->kernel_fd, KERNEL_MAX_SIZE,
		       &vm->kernel, &vm->kernel_len, err, errlen);
	if (r < 0)
		return r;
	r = bh_bzimage_parse(vm->kernel, vm->kernel_len, &vm->bz, err, errlen);
	if (r < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "--kernel: '%s': %s", cfg->kernel, why);
		images_free(vm);
		return r;
	}
	if (vm->initramfs_fd >= 0) {
		r = read_image("--initramfs", cfg->initramfs, vm->initramfs_fd,
			       cfg->memory < 4 * BH_GIB ? cfg->memory
							: 4 * BH_GIB,
			       &vm->initramfs, &vm->initramfs_len, err, errlen);
		if (r < 0) {
			images_free(vm);
			return r;
		}
	}
	return 0;
}

static int vm_load_images(struct bh_vm *vm, Bh__VcpuState *st, char *err,
			  size_t errlen);

static int open_image(const char *opt, const char *path, int *fd, char *err,
		      size_t errlen)
{
	int r = bh_open_file(path);

	if (r < 0) {
		snprintf(err, errlen, "%s: cannot open '%s': %s", opt, path,
			 strerror(-r));
		return r;
	}
	*fd = r;
	return 0;
}

/* Fills guest RAM for one boot: ACPI tables, kernel, initramfs, command
 * line, zero page, page tables; st receives the boot vCPU state. */
static int vm_load(struct bh_vm *vm, Bh__VcpuState *st, char *err,
		   size_t errlen)
{
	int r = images_read(vm, err, errlen);

	if (r < 0)
		return r;
	r = vm_load_images(vm, st, err, errlen);
	images_free(vm);
	return r;
}

static int vm_load_images(struct bh_vm *vm, Bh__VcpuState *st, char *err,
			  size_t errlen)
{
	struct bh_acpi_config acfg = { .vcpus = vm->cfg->vcpus };
	struct bh_acpi_result ares;
	struct bh_boot_images im = {
		.kernel = vm->kernel,
		.kernel_len = vm->kernel_len,
		.initramfs = vm->initramfs,
		.initramfs_len = vm->initramfs_len,
		.cmdline = vm->cfg->cmdline,
	};
	struct bh_boot_result res;
	struct bh_mem_layout layout;
	uint8_t *acpi;
	int r;

	r = bh_layout_compute(vm->cfg->memory, &layout);
	if (r < 0) {
		snprintf(err, errlen, "--memory: %llu bytes cannot be laid out",
			 (unsigned long long)vm->cfg->memory);
		return r;
	}
	r = bh_guest_mem_create(&vm->mem, &layout);
	if (r < 0) {
		snprintf(err, errlen,
			 "cannot create %llu MiB of guest memory: %s",
			 (unsigned long long)(vm->cfg->memory / BH_MIB),
			 strerror(-r));
		return r;
	}
	acpi = bh_guest_mem_ptr(&vm->mem, BH_ACPI_ADDR, BH_ACPI_SIZE);
	if (!acpi) {
		snprintf(err, errlen, "guest memory has no room for ACPI");
		return -EFAULT;
	}
	r = bh_acpi_build(acpi, BH_ACPI_SIZE, BH_ACPI_ADDR, &acfg, &ares);
	if (r < 0) {
		snprintf(err, errlen, "cannot build the ACPI tables: %s",
			 strerror(-r));
		return r;
	}
	im.acpi_rsdp = ares.rsdp_gpa;
	r = bh_bzimage_load(&vm->mem, &vm->bz, &im, &res, err, errlen);
	if (r < 0)
		return r;
	r = bh_boot_setup_long_mode(&vm->mem, res.entry, res.zero_page, st);
	if (r == 0)
		r = bh_boot_write_reset_vector(&vm->mem);
	if (r < 0) {
		snprintf(err, errlen, "cannot write the boot page tables: %s",
			 strerror(-r));
		return r;
	}
	/* The runner maps RAM itself; the controller keeps only the fd. */
	bh_guest_mem_unmap(&vm->mem);
	bh_debug("kernel at 0x%llx, entry 0x%llx, initramfs %llu bytes at "
		 "0x%llx",
		 (unsigned long long)res.kernel_addr,
		 (unsigned long long)res.entry,
		 (unsigned long long)res.initramfs_size,
		 (unsigned long long)res.initramfs_addr);
	return 0;
}

/* The runner's and the workers' paths, once, before the sandbox: an
 * installed bulkhead takes them from BULKHEAD_LIBEXECDIR, any other only
 * from beside itself. */
static int find_children(struct bh_vm *vm, char *err, size_t errlen)
{
	char why[4200];
	int r;

	r = bh_child_dir(BULKHEAD_BINDIR, BULKHEAD_LIBEXECDIR, vm->child_dir,
			 sizeof(vm->child_dir));
	if (r < 0)
		return bh_errf(err, errlen,
			       "cannot tell where bulkhead's own programs "
			       "are (/proc/self/exe: %s)",
			       strerror(-r));
	r = bh_find_child(RUNNER_BINARY, vm->child_dir, vm->runner_path,
			  sizeof(vm->runner_path));
	if (r < 0)
		snprintf(why, sizeof(why), "no %s in %s", RUNNER_BINARY,
			 vm->child_dir);
	else
		r = bh_devices_check_binaries(vm->child_dir, why, sizeof(why));
	if (r < 0)
		return bh_errf(
		    err, errlen, "%s: %s", why,
		    strcmp(vm->child_dir, BULKHEAD_LIBEXECDIR) == 0
			? "is Bulkhead installed completely?"
			: "a bulkhead that is not installed in " BULKHEAD_BINDIR
			  " runs only the programs beside it (build "
			  "them all, or copy them with it)");
	return 0;
}

/* Frees what vm_prepare took: the VM's images, console and devices. */
static void vm_release(struct bh_vm *vm)
{
	bh_devices_close(vm->devs);
	vm->devs = NULL;
	bh_console_close(&vm->console);
	images_free(vm);
	bh_closep(&vm->kernel_fd);
	bh_closep(&vm->initramfs_fd);
	vm->cfg = NULL;
	vm->booted = false;
	if (vm->own_cfg_set) {
		bh_config_free(&vm->own_cfg);
		vm->own_cfg_set = false;
	}
}

/*
 * Takes cfg as the VM's configuration (borrowed) and checks everything that
 * can be checked before a process starts. On failure releases what it took
 * and returns -errno with a message in err.
 */
static int vm_prepare(struct bh_vm *vm, const struct bh_config *cfg, char *err,
		      size_t errlen)
{
	Bh__Segment segs[3] = { BH__SEGMENT__INIT, BH__SEGMENT__INIT,
				BH__SEGMENT__INIT };
	Bh__VcpuState st = BH__VCPU_STATE__INIT;
	size_t cl;
	int r;

	vm->cfg = cfg;
	vm->console.in_fd = vm->console.out_fd = -1;
	vm->kernel_fd = vm->initramfs_fd = -1;
	r = open_image("--kernel", cfg->kernel, &vm->kernel_fd, err, errlen);
	if (r == 0 && cfg->initramfs)
		r = open_image("--initramfs", cfg->initramfs, &vm->initramfs_fd,
			       err, errlen);
	/* Read and parsed now for the checks below; vm_load reads them
	 * again. */
	if (r == 0)
		r = images_read(vm, err, errlen);
	if (r < 0)
		goto fail;
	images_free(vm);
	cl = strlen(cfg->cmdline);
	if (cl > vm->bz.cmdline_size || cl + 1 > BH_CMDLINE_MAX) {
		snprintf(err, errlen,
			 "--cmdline: %zu bytes, the kernel accepts at most %u",
			 cl, vm->bz.cmdline_size);
		r = -E2BIG;
		goto fail;
	}
	r = bh_console_open(&vm->console, cfg, err, errlen);
	if (r < 0)
		goto fail;
	r = bh_devices_open(cfg, vm->child_dir, &vm->devs, err, errlen);
	if (r < 0)
		goto fail;
	bh_devices_set_kmsg(vm->devs, vm->kmsg);
	bh_devices_set_launcher(vm->devs, vm->launcher);
	/* A trial load proves that everything fits in the configured RAM,
	 * so that a too-small VM is refused before any process starts. */
	st.cs = &segs[0];
	st.ds = &segs[1];
	st.tr = &segs[2];
	r = vm_load(vm, &st, err, errlen);
	bh_guest_mem_destroy(&vm->mem);
	if (r < 0)
		goto fail;
	return 0;
fail:
	vm_release(vm);
	return r;
}

int bh_vm_create(const struct bh_config *cfg, struct bh_vm **out, char *err,
		 size_t errlen)
{
	struct bh_vm *vm;
	int r;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		abort();
	vm->proc_cfg = cfg;
	vm->ctl = -1;
	vm->mem.memfd = -1;
	vm->runner_pid = -1;
	vm->console.in_fd = vm->console.out_fd = -1;
	vm->kernel_fd = vm->initramfs_fd = -1;
	bh_host_facts_read(&vm->facts);
	r = find_children(vm, err, errlen);
	if (r < 0)
		goto fail;
	/* Without a kernel the VM comes later, through the API. */
	if (cfg->kernel) {
		r = vm_prepare(vm, cfg, err, errlen);
		if (r < 0)
			goto fail;
	}
	*out = vm;
	return 0;
fail:
	bh_vm_destroy(vm);
	return r;
}

void bh_vm_destroy(struct bh_vm *vm)
{
	if (!vm)
		return;
	if (vm->restore) {
		bh_snapshot_in_free(vm->restore);
		free(vm->restore);
		vm->restore = NULL;
	}
	snap_clear(vm);
	if (vm->runner_pid > 0) {
		kill(vm->runner_pid, SIGKILL);
		waitpid(vm->runner_pid, NULL, 0);
	}
	for (size_t i = 0; i < BH_ARRAY_SIZE(vm->sig_ev); i++)
		if (vm->sig_ev[i])
			event_free(vm->sig_ev[i]);
	if (vm->term_ev)
		event_free(vm->term_ev);
	if (vm->ctl_ev)
		event_free(vm->ctl_ev);
	if (vm->launcher_ev)
		event_free(vm->launcher_ev);
	if (vm->out_ev)
		event_free(vm->out_ev);
	if (vm->out_timer)
		event_free(vm->out_timer);
	bh_sendq_clear(&vm->outq);
	/* Before the event base: the workers' events live in it. */
	bh_devices_close(vm->devs);
	vm->devs = NULL;
	if (vm->stdin_ev)
		event_free(vm->stdin_ev);
	bh_console_stop(&vm->console);
	if (vm->base)
		event_base_free(vm->base);
	bh_frame_reader_reset(&vm->reader);
	bh_closep(&vm->ctl);
	bh_guest_mem_destroy(&vm->mem);
	vm_release(vm);
	free(vm);
}

/* ---- the runner --------------------------------------------------------- */

/* Tells systemd (Type=notify) where we stand; not being heard is no
 * reason to stop. */
static void notify(const char *state)
{
	int r = bh_sdnotify(state);

	if (r < 0)
		bh_log_ratelimited(BH_LOG_WARN, "cannot notify systemd: %s",
				   strerror(-r));
}

static void vm_finish(struct bh_vm *vm, int code)
{
	notify("STOPPING=1");
	vm->exit_code = code;
	event_base_loopbreak(vm->base);
}

/* Waits for the runner to exit (SIGKILL after a grace period); returns its
 * wait status, and its pid in *pid if pid is not NULL. */
static int reap_runner(struct bh_vm *vm, int grace_ms, pid_t *pid)
{
	int status, killed;

	if (pid)
		*pid = vm->runner_pid;
	if (vm->runner_pid <= 0)
		return 0;
	status = bh_reap(vm->runner_pid, grace_ms, &killed);
	if (killed)
		bh_warn("vCPU runner did not exit; killed it");
	vm->runner_pid = -1;
	return status;
}

/* Logs how the runner ended (status from reap_runner), naming the system
 * call when its seccomp filter killed it; when is appended ("" or " while
 * building the VM"). */
static void runner_report(struct bh_vm *vm, pid_t pid, int status,
			  const char *when)
{
	char desc[96];

	if (bh_kmsg_report_sigsys(vm->kmsg, pid, status, "vCPU runner"))
		return;
	bh_err("vCPU runner %s%s",
	       bh_describe_status(status, desc, sizeof(desc)), when);
}

static void runner_teardown(struct bh_vm *vm)
{
	if (vm->ctl_ev) {
		event_free(vm->ctl_ev);
		vm->ctl_ev = NULL;
	}
	if (vm->out_ev) {
		event_free(vm->out_ev);
		vm->out_ev = NULL;
	}
	/* Kept for the next boot: this may be its own callback. */
	if (vm->out_timer)
		evtimer_del(vm->out_timer);
	bh_sendq_clear(&vm->outq);
	vm->out_failed = NULL;
	bh_frame_reader_reset(&vm->reader);
	/* Workers belong to one boot: the next has fresh RAM and eventfds. */
	bh_devices_stop(vm->devs);
	bh_closep(&vm->ctl);
	bh_guest_mem_destroy(&vm->mem);
	vm->cs = CS_NONE;
	snap_fail(vm, "the VM stopped");
	if (vm->paused || vm->pause_pending)
		stdin_hold(vm, false);
	vm->paused = false;
	vm->runner_paused = false;
	if (vm->pause_pending) {
		vm->pause_pending = false;
		pause_failed(vm, "the VM stopped");
	}
	/* A device the runner never took is not part of the VM. */
	if (vm->add_pending) {
		vm->add_pending = false;
		bh_devices_add_failed(vm->devs, vm->add_index);
		bh_vmapi_event(vm->api, BH_VMAPI_DEVICE_ADD_FAILED,
			       "the VM stopped");
	}
	if (vm->gone_cb)
		vm->gone_cb(vm->gone_arg);
}

static void runner_kill(struct bh_vm *vm)
{
	if (vm->runner_pid > 0)
		kill(vm->runner_pid, SIGKILL);
	reap_runner(vm, RUNNER_EXIT_TIMEOUT, NULL);
	runner_teardown(vm);
}

static int vm_boot(struct bh_vm *vm);
static void console_attach(struct bh_vm *vm);
static void console_detach(struct bh_vm *vm);

/* The VM stopped for good (not to boot again). Without an API bulkhead ends
 * with code; with one it stays up, in the Shutdown state. */
static void vm_stopped(struct bh_vm *vm, int code)
{
	if (!vm->api || vm->terminating) {
		vm_finish(vm, code);
		return;
	}
	vm->exit_code = code;
	bh_vmapi_event(vm->api, BH_VMAPI_STOPPED, "the VM stopped");
}

/* The runner's socket closed: it exited. Decide what that means. */
static void runner_gone(struct bh_vm *vm)
{
	pid_t pid;
	int status = reap_runner(vm, RUNNER_EXIT_TIMEOUT, &pid);
	int expected = vm->cs == CS_STOPPING && WIFEXITED(status) &&
		       WEXITSTATUS(status) == 0;
	enum after_stop after = vm->after;

	runner_teardown(vm);
	if (!expected) {
		runner_report(vm, pid, status, "; stopping the VM");
		vm_stopped(vm, BH_EXIT_FAILURE);
		return;
	}
	switch (after) {
	case AFTER_POWEROFF:
		bh_info("guest powered off");
		vm_stopped(vm, BH_EXIT_POWEROFF);
		break;
	case AFTER_SIGNAL:
		vm_finish(vm, vm->signal_code);
		break;
	case AFTER_EXIT:
		vm_finish(vm, 0);
		break;
	case AFTER_SHUTDOWN:
		bh_info("VM shut down");
		vm_stopped(vm, 0);
		break;
	case AFTER_REBOOT:
		bh_info("guest reset: booting again");
		bh_vmapi_event(vm->api, BH_VMAPI_STOPPED, NULL);
		if (vm_boot(vm) < 0) {
			bh_vmapi_event(vm->api, BH_VMAPI_BOOT_FAILED,
				       "the VM did not boot again");
			vm_stopped(vm, BH_EXIT_FAILURE);
		} else {
			bh_vmapi_event(vm->api, BH_VMAPI_BOOTED, NULL);
		}
		break;
	default:
		vm_stopped(vm, BH_EXIT_FAILURE);
		break;
	}
}

/* The runner took nothing for RUNNER_SEND_TIMEOUT, or its queue
 * overflowed: it is killed, and the VM has crashed. A stop the runner was
 * asked for by a signal or shutdown-vmm still ends bulkhead. */
static void runner_stuck(struct bh_vm *vm)
{
	enum after_stop after =
	    vm->cs == CS_STOPPING ? vm->after : AFTER_NOTHING;

	bh_err("vCPU runner %s; killed it: the VM crashed", vm->out_failed);
	runner_kill(vm);
	if (after == AFTER_SIGNAL || after == AFTER_EXIT)
		vm_finish(vm, BH_EXIT_FAILURE);
	else
		vm_stopped(vm, BH_EXIT_FAILURE);
}

static void on_out_timer(evutil_socket_t fd, short what, void *arg)
{
	struct bh_vm *vm = arg;
	uint64_t stalled = bh_sendq_stalled_ms(&vm->outq);
	struct timeval tv;

	if (!vm->out_failed) {
		if (!bh_sendq_pending(&vm->outq))
			return;
		if (stalled < RUNNER_SEND_TIMEOUT) {
			stalled = RUNNER_SEND_TIMEOUT - stalled;
			tv.tv_sec = (time_t)(stalled / 1000);
			tv.tv_usec = (suseconds_t)(stalled % 1000) * 1000;
			evtimer_add(vm->out_timer, &tv);
			return;
		}
		snprintf(vm->out_why, sizeof(vm->out_why),
			 "left its messages unread for %d ms",
			 RUNNER_SEND_TIMEOUT);
		vm->out_failed = vm->out_why;
	}
	runner_stuck(vm);
}

static void on_ctl_writable(evutil_socket_t fd, short what, void *arg)
{
	struct bh_vm *vm = arg;
	int r = bh_sendq_flush(&vm->outq);

	if (r == -EAGAIN)
		return;
	event_del(vm->out_ev);
	if (r < 0) {
		/* Gone: the end of its socket says how, on the read side. */
		bh_debug("vCPU runner connection: %s", strerror(-r));
		bh_sendq_clear(&vm->outq);
	}
}

/*
 * Sends a frame to the runner (fds borrowed). Nothing waits for the runner
 * to read, once the loop watches it: what its socket does not take is
 * queued, and a runner that takes nothing for RUNNER_SEND_TIMEOUT, or lets
 * RUNNER_QUEUE_MAX pile up, is killed from the loop. During the set-up
 * exchange, before that, the send waits up to RUNNER_SEND_TIMEOUT. 0, or
 * -errno if the frame will not reach the runner.
 */
static int runner_send(struct bh_vm *vm, Bh__MsgType type,
		       const ProtobufCMessage *m, const int *fds,
		       unsigned int nfds)
{
	struct timeval tv = { RUNNER_SEND_TIMEOUT / 1000,
			      (RUNNER_SEND_TIMEOUT % 1000) * 1000 };
	int r;

	if (vm->ctl < 0 || vm->cs == CS_NONE)
		return -ENOTCONN;
	if (vm->out_failed)
		return -ECONNABORTED;
	r = bh_sendq_push(&vm->outq, (uint16_t)type, m, fds, nfds);
	if (r == -ENOBUFS && vm->out_timer) {
		snprintf(vm->out_why, sizeof(vm->out_why),
			 "left more than %d KiB of messages unread",
			 RUNNER_QUEUE_MAX / 1024);
		vm->out_failed = vm->out_why;
		event_active(vm->out_timer, EV_TIMEOUT, 1);
	}
	if (r < 0)
		return r;
	if (!vm->ctl_ev)
		return bh_sendq_wait(&vm->outq, RUNNER_SEND_TIMEOUT);
	if (bh_sendq_pending(&vm->outq)) {
		event_add(vm->out_ev, NULL);
		if (!evtimer_pending(vm->out_timer, NULL))
			evtimer_add(vm->out_timer, &tv);
	}
	return 0;
}

/* For the device relays (devices.c). */
static int runner_send_relay(void *arg, uint16_t type,
			     const ProtobufCMessage *m, const int *fds,
			     unsigned int nfds)
{
	return runner_send(arg, (Bh__MsgType)type, m, fds, nfds);
}

static void send_quit(struct bh_vm *vm, enum after_stop after)
{
	Bh__Quit q = BH__QUIT__INIT;

	vm->after = after;
	vm->cs = CS_STOPPING;
	if (runner_send(vm, BH__MSG_TYPE__MSG_QUIT, &q.base, NULL, 0) < 0)
		bh_warn("cannot ask the vCPU runner to quit");
}

static int h_ready(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__RunnerReady *r = (const Bh__RunnerReady *)m;
	struct bh_vm *vm = ctx;

	bh_debug("vCPU runner ready: %s", r->kvm_info);
	vm->cs = CS_RUNNING;
	return 0;
}

static int h_serial_out(void *ctx, const ProtobufCMessage *m,
			struct bh_frame *f)
{
	const Bh__SerialData *d = (const Bh__SerialData *)m;
	struct bh_vm *vm = ctx;

	bh_console_write(&vm->console, d->data.data, d->data.len);
	return 0;
}

static int h_guest_event(void *ctx, const ProtobufCMessage *m,
			 struct bh_frame *f)
{
	const Bh__GuestEvent *ev = (const Bh__GuestEvent *)m;
	struct bh_vm *vm = ctx;

	/* Already stopping (a signal came first): the verdict stands. */
	if (vm->cs == CS_STOPPING) {
		bh_debug("guest event while stopping: %s", ev->reason);
		return 0;
	}
	switch (ev->kind) {
	case BH__GUEST_EVENT__KIND__POWEROFF:
		bh_debug("guest event: %s", ev->reason);
		send_quit(vm, AFTER_POWEROFF);
		return 0;
	case BH__GUEST_EVENT__KIND__RESET:
		bh_debug("guest event: %s", ev->reason);
		send_quit(vm, AFTER_REBOOT);
		return 0;
	case BH__GUEST_EVENT__KIND__CRASH:
		bh_err("guest crashed: %s", ev->reason);
		send_quit(vm, AFTER_CRASH);
		return 0;
	default:
		return -EINVAL;
	}
}

static int h_exit_stats(void *ctx, const ProtobufCMessage *m,
			struct bh_frame *f)
{
	const Bh__ExitStats *s = (const Bh__ExitStats *)m;
	struct bh_vm *vm = ctx;

	if (!vm->cfg->print_exit_stats)
		return 0;
	/* stderr is ours to lose: a failed write is no fault of the runner. */
	(void)bh_exitlog_write(STDERR_FILENO, s, vm->boots);
	return 0;
}

/* Device control messages go on to the device's worker. */
static int h_virtio_activate(void *ctx, const ProtobufCMessage *m,
			     struct bh_frame *f)
{
	struct bh_vm *vm = ctx;

	return bh_devices_activate(vm->devs, (const Bh__VirtioActivate *)m);
}

static int h_virtio_reset(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	struct bh_vm *vm = ctx;

	return bh_devices_reset(vm->devs, (const Bh__VirtioDeviceRef *)m);
}

static int h_virtio_config_write(void *ctx, const ProtobufCMessage *m,
				 struct bh_frame *f)
{
	struct bh_vm *vm = ctx;

	return bh_devices_config_write(vm->devs,
				       (const Bh__VirtioConfigWrite *)m);
}

/* Every worker is quiet (or gone): the VM is paused. */
static void devices_paused(void *arg)
{
	struct bh_vm *vm = arg;

	if (!vm->pause_pending)
		return;
	vm->pause_pending = false;
	vm->paused = true;
	bh_info("VM paused");
	if (vm->pause_cb) {
		bh_vm_done_fn cb = vm->pause_cb;

		vm->pause_cb = NULL;
		cb(vm->pause_arg, 0, NULL);
		return;
	}
	bh_vmapi_event(vm->api, BH_VMAPI_PAUSED, NULL);
}

/* The pause under way did not happen (why says why). */
static void pause_failed(struct bh_vm *vm, const char *why)
{
	if (vm->pause_cb) {
		bh_vm_done_fn cb = vm->pause_cb;

		vm->pause_cb = NULL;
		cb(vm->pause_arg, -EIO, why);
		return;
	}
	bh_vmapi_event(vm->api, BH_VMAPI_PAUSE_FAILED, why);
}

/* The vCPUs are stopped: nothing kicks a queue any more, and the workers
 * are asked to finish what is in flight. */
static int h_paused(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct bh_vm *vm = ctx;
	int r;

	if (!vm->pause_pending || vm->runner_paused)
		return -EPROTO;
	vm->runner_paused = true;
	r = bh_devices_pause(vm->devs, devices_paused, vm);
	if (r != 0)
		devices_paused(vm);
	return 0;
}

/* ---- snapshots ------------------------------------------------------- */

static void snap_clear(struct bh_vm *vm)
{
	for (unsigned int i = 0; i < vm->snap.ncpus; i++)
		bh__cpu_state__free_unpacked(vm->snap.cpus[i], NULL);
	free(vm->snap.cpus);
	bh_devices_save_free(vm->snap.devs, vm->snap.ndevs);
	memset(&vm->snap, 0, sizeof(vm->snap));
}

/* The snapshot under way did not happen: nothing was written (or what was
 * is gone again), and the VM stays paused. */
static void snap_fail(struct bh_vm *vm, const char *why)
{
	bh_vm_state_fn cb = vm->state_cb;

	if (!vm->snap.pending)
		return;
	snap_clear(vm);
	vm->state_cb = NULL;
	if (cb) {
		cb(vm->state_arg, NULL, why);
		return;
	}
	bh_err("snapshot failed: %s", why);
	bh_vmapi_event(vm->api, BH_VMAPI_SNAPSHOT_FAILED, why);
}

static int h_saved_cpu(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__CpuState *c = (const Bh__CpuState *)m;
	struct bh_vm *vm = ctx;
	Bh__CpuState *copy;

	/* Asked for, in order, one per vCPU. */
	if (!vm->snap.pending || vm->snap.ncpus >= vm->cfg->vcpus ||
	    c->id != vm->snap.ncpus)
		return -EPROTO;
	copy = bh__cpu_state__unpack(NULL, f->len, f->body);
	if (!copy)
		return -ENOMEM;
	vm->snap.cpus[vm->snap.ncpus++] = copy;
	return 0;
}

/* The runner's part is complete: everything goes to the directory. */
static int h_saved(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct bh_vm *vm = ctx;
	Bh__SnapshotState st = BH__SNAPSHOT_STATE__INIT;
	struct bh_config now;
	struct timespec ts;
	char err[512];
	int r;

	if (!vm->snap.pending || vm->snap.ncpus != vm->cfg->vcpus)
		return -EPROTO;
	clock_gettime(CLOCK_REALTIME, &ts);
	st.ram_size = vm->mem.layout.ram_size;
	st.runner = (Bh__RunnerSavedState *)m;
	st.n_cpus = vm->snap.ncpus;
	st.cpus = vm->snap.cpus;
	st.n_devices = vm->snap.ndevs;
	st.devices = vm->snap.devs;
	st.saved_at_ns =
	    (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (vm->state_cb) {
		bh_vm_state_fn cb = vm->state_cb;

		vm->state_cb = NULL;
		cb(vm->state_arg, &st, NULL);
		snap_clear(vm);
		return 0;
	}
	bh_devices_config(vm->devs, vm->cfg, &now);
	r = bh_snapshot_write(vm->snap.dir, &now, vm->mem.memfd,
			      vm->mem.layout.ram_size, &st, err, sizeof(err));
	if (r < 0) {
		snap_fail(vm, err);
		return 0;
	}
	snap_clear(vm);
	bh_vmapi_event(vm->api, BH_VMAPI_SNAPSHOT_DONE, NULL);
	return 0;
}

static int h_restored(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	struct bh_vm *vm = ctx;

	if (!vm->restore || vm->restore_done)
		return -EPROTO;
	vm->restore_done = true;
	return 0;
}

/* The devices' part of the state now, and the runner asked for its own;
 * h_saved completes it. */
static int save_begin(struct bh_vm *vm, char *err, size_t errlen)
{
	int r;

	r = bh_devices_save(vm->devs, &vm->snap.devs, &vm->snap.ndevs, err,
			    errlen);
	if (r < 0)
		return r;
	vm->snap.cpus = calloc(vm->cfg->vcpus, sizeof(*vm->snap.cpus));
	if (!vm->snap.cpus) {
		snap_clear(vm);
		return bh_errf(err, errlen, "out of memory");
	}
	r = runner_send_empty(vm, BH__MSG_TYPE__MSG_RUNNER_SAVE);
	if (r < 0) {
		snap_clear(vm);
		snprintf(err, errlen, "cannot reach the vCPU runner: %s",
			 strerror(-r));
		return r;
	}
	vm->snap.pending = true;
	return 0;
}

int bh_vm_snapshot(struct bh_vm *vm, const char *url, char *err, size_t errlen)
{
	char dir[sizeof(vm->snap.dir)];
	int r;

	if (vm->cs != CS_RUNNING || !vm->paused) {
		snprintf(err, errlen, "the VM is not paused");
		return -ENOTCONN;
	}
	if (vm->snap.pending || vm->add_pending) {
		snprintf(err, errlen, "%s",
			 vm->snap.pending ? "a snapshot is under way"
					  : "a device is being added");
		return -EBUSY;
	}
	if (bh_vm_dirty_active(vm)) {
		snprintf(err, errlen, "a migration is under way");
		return -EBUSY;
	}
	r = bh_snapshot_url(url, dir, sizeof(dir), err, errlen);
	if (r < 0)
		return r;
	r = bh_vm_check_savable(vm, "a restore", err, errlen);
	if (r < 0)
		return r;
	r = save_begin(vm, err, errlen);
	if (r < 0)
		return r;
	snprintf(vm->snap.dir, sizeof(vm->snap.dir), "%s", dir);
	bh_info("snapshot to %s: saving the VM's state", dir);
	return 0;
}

static int h_error(void *ctx, const ProtobufCMessage *m, struct bh_frame *f)
{
	const Bh__Error *e = (const Bh__Error *)m;
	struct bh_vm *vm = ctx;

	bh_err("vCPU runner reported: %s (%s)", e->message,
	       strerror(e->code > 0 ? e->code : EIO));
	if (vm->snap.pending) {
		snap_fail(vm, e->message);
		return 0;
	}
	if (vm->restore && !vm->restore_done) {
		vm->restore_failed = true;
		return 0;
	}
	/* The runner answers a pause it could not carry out with an error,
	 * and runs on. */
	if (vm->pause_pending && !vm->runner_paused) {
		vm->pause_pending = false;
		stdin_hold(vm, false);
		pause_failed(vm, e->message);
		return 0;
	}
	/* Or a dirty log request (no pause is sent while one waits). */
	(void)bh_dirty_runner_error(vm->devs, e->code, e->message);
	return 0;
}

static int h_dirty_log_done(void *ctx, const ProtobufCMessage *m,
			    struct bh_frame *f)
{
	struct bh_vm *vm = ctx;

	return bh_dirty_runner_log_done(vm->devs);
}

static int h_dirty_synced(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	struct bh_vm *vm = ctx;

	return bh_dirty_runner_synced(vm->devs, (const Bh__DirtySynced *)m);
}

/* The runner's answer to a hot add: in, or refused (the VM runs on without
 * the device). An answer for no add in flight is the runner's fault. */
static int h_device_added(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	const Bh__RunnerDeviceAdded *a = (const Bh__RunnerDeviceAdded *)m;
	struct bh_vm *vm = ctx;

	(void)f;
	if (!vm->add_pending || a->index != vm->add_index) {
		bh_err("vCPU runner: an add answered for device %u, which is "
		       "not being added",
		       a->index);
		return -EPROTO;
	}
	vm->add_pending = false;
	if (a->error) {
		bh_err("vCPU runner refused the device: %s", a->message);
		bh_devices_add_failed(vm->devs, vm->add_index);
		bh_vmapi_event(vm->api, BH_VMAPI_DEVICE_ADD_FAILED,
			       a->message && *a->message ? a->message
							 : "refused");
		return 0;
	}
	bh_vmapi_event(vm->api, BH_VMAPI_DEVICE_ADDED, NULL);
	return 0;
}

static int h_device_removed(void *ctx, const ProtobufCMessage *m,
			    struct bh_frame *f)
{
	struct bh_vm *vm = ctx;
	char id[BH_CONFIG_ID_MAX + 1];
	int r;

	r = bh_devices_removed(vm->devs, (const Bh__RunnerDeviceRemoved *)m, id,
			       sizeof(id));
	if (r < 0)
		return r;
	bh_vmapi_event(vm->api, BH_VMAPI_DEVICE_REMOVED, id);
	return 0;
}

#define RUNNER_ALIVE \
	(BH_STATE(CS_SETUP) | BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING))

/* What the runner may send, and when. Anything else ends the runner. */
static const struct bh_handler runner_msgs[] = {
	{ BH__MSG_TYPE__MSG_RUNNER_READY, BH_STATE(CS_SETUP), 0,
	  &bh__runner_ready__descriptor, h_ready, "runner-ready" },
	{ BH__MSG_TYPE__MSG_SERIAL_OUT,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__serial_data__descriptor, h_serial_out, "serial-out" },
	{ BH__MSG_TYPE__MSG_GUEST_EVENT,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__guest_event__descriptor, h_guest_event, "guest-event" },
	{ BH__MSG_TYPE__MSG_EXIT_STATS,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__exit_stats__descriptor, h_exit_stats, "exit-stats" },
	{ BH__MSG_TYPE__MSG_VIRTIO_ACTIVATE,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__virtio_activate__descriptor, h_virtio_activate,
	  "virtio-activate" },
	{ BH__MSG_TYPE__MSG_VIRTIO_RESET,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__virtio_device_ref__descriptor, h_virtio_reset, "virtio-reset" },
	{ BH__MSG_TYPE__MSG_VIRTIO_CONFIG_WRITE,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__virtio_config_write__descriptor, h_virtio_config_write,
	  "virtio-config-write" },
	{ BH__MSG_TYPE__MSG_RUNNER_SAVED_CPU, BH_STATE(CS_RUNNING), 0,
	  &bh__cpu_state__descriptor, h_saved_cpu, "runner-saved-cpu" },
	{ BH__MSG_TYPE__MSG_RUNNER_SAVED, BH_STATE(CS_RUNNING), 0,
	  &bh__runner_saved_state__descriptor, h_saved, "runner-saved" },
	{ BH__MSG_TYPE__MSG_RUNNER_RESTORED, BH_STATE(CS_RUNNING), 0,
	  &bh__empty__descriptor, h_restored, "runner-restored" },
	{ BH__MSG_TYPE__MSG_RUNNER_PAUSED,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__empty__descriptor, h_paused, "runner-paused" },
	{ BH__MSG_TYPE__MSG_RUNNER_DEVICE_ADDED,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__runner_device_added__descriptor, h_device_added,
	  "runner-device-added" },
	{ BH__MSG_TYPE__MSG_RUNNER_DEVICE_REMOVED,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__runner_device_removed__descriptor, h_device_removed,
	  "runner-device-removed" },
	{ BH__MSG_TYPE__MSG_RUNNER_DIRTY_LOG_DONE,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__empty__descriptor, h_dirty_log_done, "runner-dirty-log-done" },
	{ BH__MSG_TYPE__MSG_RUNNER_DIRTY_SYNCED,
	  BH_STATE(CS_RUNNING) | BH_STATE(CS_STOPPING), 0,
	  &bh__dirty_synced__descriptor, h_dirty_synced,
	  "runner-dirty-synced" },
	{ BH__MSG_TYPE__MSG_ERROR, RUNNER_ALIVE, 0, &bh__error__descriptor,
	  h_error, "error" },
};

/* Handles one frame from the runner; <0 means the runner misbehaved. */
static int runner_dispatch(struct bh_vm *vm, struct bh_frame *f)
{
	const char *name = NULL;
	uint16_t type = f->type;
	int r;

	r = bh_dispatch(runner_msgs, BH_ARRAY_SIZE(runner_msgs), vm->cs, f, vm,
			&name);
	if (r < 0)
		bh_err("vCPU runner sent a bad message (%s, type %u): %s",
		       name ? name : "unknown", type, strerror(-r));
	return r;
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct bh_vm *vm = arg;
	struct bh_frame f;
	int r = 0;

	for (unsigned int n = 0;; n++) {
		/* More later (the event stays), or nothing more from a
		 * runner about to be killed. */
		if (n == RUNNER_FRAMES_PER_WAKE || vm->out_failed)
			return;
		r = bh_frame_read(vm->ctl, &vm->reader, &f);
		if (r == 0)
			return;
		if (r < 0)
			break;
		if (runner_dispatch(vm, &f) < 0) {
			runner_kill(vm);
			vm_stopped(vm, BH_EXIT_FAILURE);
			return;
		}
	}
	if (r == -EPIPE || r == -ECONNRESET) {
		runner_gone(vm);
		return;
	}
	bh_err("vCPU runner connection: %s", strerror(-r));
	runner_kill(vm);
	vm_stopped(vm, BH_EXIT_FAILURE);
}

static int runner_spawn(struct bh_vm *vm)
{
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* The launcher builds its command line; the runner is our child. */
	r = bh_launcher_spawn(vm->launcher, BH_LAUNCH_RUNNER, NULL, sv[1],
			      &vm->runner_pid);
	close(sv[1]);
	if (r < 0) {
		vm->runner_pid = -1;
		close(sv[0]);
		return r;
	}
	/* Nothing on this side may wait for the runner: a runner that stops
	 * reading, or stops in the middle of a frame, must not hold the
	 * controller. */
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		close(sv[0]);
		return r;
	}
	vm->ctl = sv[0];
	bh_frame_reader_init(&vm->reader, BH_FRAME_MAX_BODY);
	bh_sendq_init(&vm->outq, vm->ctl, RUNNER_QUEUE_MAX);
	return 0;
}

static void fill_regions(struct bh_vm *vm, Bh__MemRegion *regs,
			 Bh__MemRegion **ptrs)
{
	for (unsigned int i = 0; i < vm->mem.layout.nregions; i++) {
		bh__mem_region__init(&regs[i]);
		regs[i].guest_phys = vm->mem.layout.regions[i].guest_phys;
		regs[i].size = vm->mem.layout.regions[i].size;
		regs[i].memfd_offset = vm->mem.layout.regions[i].memfd_offset;
		ptrs[i] = &regs[i];
	}
}

/*
 * A fresh runner and the handshake with it: 0 or -errno. vm->ctl is -1 when
 * the runner did not start (logged); otherwise the runner is the caller's
 * to reap or kill.
 */
static int runner_start(struct bh_vm *vm)
{
	Bh__Hello hello = BH__HELLO__INIT;
	struct bh_frame f;
	int r;

	r = runner_spawn(vm);
	if (r < 0) {
		bh_err("cannot start %s: %s", vm->runner_path, strerror(-r));
		return r;
	}
	vm->cs = CS_SETUP;
	hello.version = BH_PROTO_VERSION;
	hello.role = "controller";
	r = runner_send(vm, BH__MSG_TYPE__MSG_HELLO, &hello.base, NULL, 0);
	if (r == 0)
		r = bh_frame_read_timeout(vm->ctl, &vm->reader, &f,
					  RUNNER_SETUP_TIMEOUT);
	if (r == 0) {
		r = bh_hello_check(&f, "vcpu-runner");
		bh_frame_release(&f);
	}
	return r;
}

/* ---- the host's KVM ----------------------------------------------------- */

static int h_probe_result(void *ctx, const ProtobufCMessage *m,
			  struct bh_frame *f)
{
	const Bh__RunnerProbeResult *res = (const Bh__RunnerProbeResult *)m;
	struct bh_kvm_report *rep = ctx;

	(void)f;
	/* Answers for exactly the capabilities asked, in their order, or
	 * none when /dev/kvm did not open. */
	if (res->n_capabilities != bh_kvm_ncaps &&
	    !(res->open_errno && !res->n_capabilities))
		return -EPROTO;
	memset(rep, 0, sizeof(*rep));
	rep->open_errno = res->open_errno;
	rep->api_version = res->api_version;
	snprintf(rep->vendor, sizeof(rep->vendor), "%s", res->cpu_vendor);
	for (size_t i = 0; i < res->n_capabilities; i++)
		rep->caps[i] = res->capabilities[i];
	rep->ncaps = res->n_capabilities;
	rep->probe_ran = res->probe_ran;
	snprintf(rep->probe_error, sizeof(rep->probe_error), "%s",
		 res->probe_error);
	rep->probe_planned = res->probe_planned;
	rep->probe_done = res->probe_done;
	rep->probe_ns = res->probe_ns;
	rep->probe_deadline_ns = res->probe_deadline_ns;
	rep->probe_best_done = res->probe_best_done;
	rep->probe_best_ns = res->probe_best_ns;
	if (rep->probe_done > rep->probe_planned ||
	    rep->probe_best_done > rep->probe_done ||
	    (rep->open_errno < 0 || rep->open_errno > 4095))
		return -EPROTO;
	return 0;
}

static const struct bh_handler probe_msgs[] = {
	{ BH__MSG_TYPE__MSG_RUNNER_PROBE_RESULT, BH_STATE(0), 0,
	  &bh__runner_probe_result__descriptor, h_probe_result,
	  "runner-probe-result" },
};

/*
 * Asks a runner that has just said hello what /dev/kvm offers and how fast
 * its probe guest ran. 0 with rep filled, or -errno (the runner failed).
 */
static int probe_exchange(struct bh_vm *vm, struct bh_kvm_report *rep)
{
	Bh__RunnerProbe q = BH__RUNNER_PROBE__INIT;
	uint32_t caps[BH_HOST_MAX_CAPS];
	const char *name = NULL;
	struct bh_frame f;
	int r;

	for (size_t i = 0; i < bh_kvm_ncaps; i++)
		caps[i] = bh_kvm_caps[i].num;
	q.n_capabilities = bh_kvm_ncaps;
	q.capabilities = caps;
	r = runner_send(vm, BH__MSG_TYPE__MSG_RUNNER_PROBE, &q.base, NULL, 0);
	if (r < 0)
		return r;
	r = bh_frame_read_timeout(vm->ctl, &vm->reader, &f,
				  RUNNER_PROBE_SLACK + BH_PROBE_DEADLINE_MS);
	if (r < 0)
		return r;
	r = bh_dispatch(probe_msgs, BH_ARRAY_SIZE(probe_msgs), 0, &f, rep,
			&name);
	if (r < 0)
		bh_err("vCPU runner answered the probe with a bad message "
		       "(%s): %s",
		       name ? name : "unknown", strerror(-r));
	return r;
}

/* The first boot's runner probes the host's KVM; a KVM that cannot run a
 * stock guest is refused before any guest code runs. */
static int vm_check_kvm(struct bh_vm *vm)
{
	struct bh_kvm_report rep;
	enum bh_kvm_verdict v;
	uint64_t t0 = bh_now_ns();
	int r;

	if (vm->kvm_checked)
		return 0;
	r = probe_exchange(vm, &rep);
	if (r < 0)
		return r;
	v = bh_kvm_judge(&vm->facts, &rep, vm->refusal, sizeof(vm->refusal));
	if (v != BH_KVM_FAST) {
		vm->host_refused = true;
		bh_err("%s", vm->refusal);
		return -ENOTSUP;
	}
	bh_debug("KVM runs guest code at %llu million instructions a second "
		 "(the check took %llu us)",
		 (unsigned long long)(bh_kvm_probe_ips(&rep) / 1000000),
		 (unsigned long long)((bh_now_ns() - t0) / 1000));
	vm->kvm_checked = true;
	return 0;
}

int bh_vm_check_host(const struct bh_vm *vm0, struct bh_kvm_report *rep)
{
	struct bh_vm *vm = (struct bh_vm *)vm0;
	pid_t pid;
	int r, status;

	r = runner_start(vm);
	if (vm->ctl < 0)
		return r;
	if (r == 0)
		r = probe_exchange(vm, rep);
	if (r == 0) {
		Bh__Quit q = BH__QUIT__INIT;

		runner_send(vm, BH__MSG_TYPE__MSG_QUIT, &q.base, NULL, 0);
	}
	bh_sendq_clear(&vm->outq);
	bh_closep(&vm->ctl);
	vm->cs = CS_NONE;
	status = reap_runner(vm, RUNNER_EXIT_TIMEOUT, &pid);
	if (r == -EPIPE || r == -ECONNRESET)
		runner_report(vm, pid, status, " while probing /dev/kvm");
	bh_frame_reader_reset(&vm->reader);
	return r;
}

/* One boot: fresh guest RAM, a fresh runner, the set-up exchange. */
/* Guest RAM from the snapshot, in a memfd of the configuration's size. */
static int restore_memory(struct bh_vm *vm, char *err, size_t errlen)
{
	struct bh_mem_layout layout;
	int r;

	r = bh_layout_compute(vm->cfg->memory, &layout);
	if (r < 0)
		return bh_errf(err, errlen,
			       "memory: %llu bytes cannot be laid "
			       "out",
			       (unsigned long long)vm->cfg->memory);
	/* A migration's RAM came with it. */
	if (vm->restore->memfd >= 0) {
		r = bh_guest_mem_adopt(&vm->mem, &layout, vm->restore->memfd);
		if (r < 0)
			return bh_errf(err, errlen,
				       "the guest RAM received does not fit "
				       "%llu bytes",
				       (unsigned long long)layout.ram_size);
		vm->restore->memfd = -1;
		return 0;
	}
	r = bh_guest_mem_create(&vm->mem, &layout);
	if (r < 0) {
		snprintf(err, errlen,
			 "cannot create %llu MiB of guest memory: %s",
			 (unsigned long long)(vm->cfg->memory / BH_MIB),
			 strerror(-r));
		return r;
	}
	bh_guest_mem_unmap(&vm->mem);
	return bh_snapshot_load_memory(vm->restore, vm->mem.memfd, err, errlen);
}

/*
 * The runner's state back, once the devices are on its bus: the VM's, then
 * each vCPU's; the runner answers RUNNER_RESTORED (announcing the devices
 * the driver had activated on the way, which the workers take up) or an
 * error. Waits for it here, as for RUNNER_READY.
 */
static int restore_runner(struct bh_vm *vm)
{
	const Bh__SnapshotState *st = vm->restore->state;
	uint64_t deadline = bh_now_ns() / 1000000 + RUNNER_SETUP_TIMEOUT;
	struct bh_frame f;
	int r;

	vm->restore_done = vm->restore_failed = false;
	r = runner_send(vm, BH__MSG_TYPE__MSG_RUNNER_RESTORE, &st->runner->base,
			NULL, 0);
	for (size_t i = 0; r == 0 && i < st->n_cpus; i++)
		r = runner_send(vm, BH__MSG_TYPE__MSG_RUNNER_RESTORE_CPU,
				&st->cpus[i]->base, NULL, 0);
	while (r == 0 && !vm->restore_done && !vm->restore_failed) {
		uint64_t now = bh_now_ns() / 1000000;

		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		r = bh_frame_read_timeout(vm->ctl, &vm->reader, &f,
					  (int)(deadline - now));
		if (r == 0)
			r = runner_dispatch(vm, &f);
	}
	if (r == 0 && vm->restore_failed)
		r = -EINVAL;
	if (r < 0)
		bh_err("restore: the vCPU runner did not take the saved state: "
		       "%s",
		       r == -EINVAL ? "refused (see above)" : strerror(-r));
	return r;
}

static int vm_boot(struct bh_vm *vm)
{
	Bh__Segment segs[3] = { BH__SEGMENT__INIT, BH__SEGMENT__INIT,
				BH__SEGMENT__INIT };
	Bh__VcpuState st = BH__VCPU_STATE__INIT;
	Bh__RunnerSetup setup = BH__RUNNER_SETUP__INIT;
	Bh__RunnerStart start = BH__RUNNER_START__INIT;
	Bh__MemRegion regs[BH_MAX_RAM_REGIONS];
	Bh__MemRegion *ptrs[BH_MAX_RAM_REGIONS];
	struct bh_frame f;
	char err[256];
	int r;

	vm->boots++;
	vm->booted = true;
	vm->after = AFTER_NOTHING;
	vm->paused = false;
	st.cs = &segs[0];
	st.ds = &segs[1];
	st.tr = &segs[2];
	/* A restore's guest RAM is the snapshot's; the boot state sent below
	 * is only a placeholder, which the saved vCPUs replace. */
	r = vm->restore ? restore_memory(vm, err, sizeof(err))
			: vm_load(vm, &st, err, sizeof(err));
	if (r < 0) {
		bh_err("%s", err);
		/* A snapshot found damaged only now is refused like one
		 * found so before: nothing of the guest ran. */
		if (vm->restore && (r == -EBADMSG || r == -EINVAL))
			vm->restore_refused = true;
		goto fail;
	}
	/* Workers first: the runner needs their queue counts and config. */
	r = bh_devices_start(vm->devs, &vm->mem, vm->base);
	if (r < 0)
		goto fail;
	/* A restored VM starts paused: its workers are quiet from the
	 * start, and take up their rings when it resumes. */
	if (vm->restore)
		bh_devices_pause(vm->devs, NULL, NULL);
	r = runner_start(vm);
	if (vm->ctl < 0)
		goto fail;
	if (r == -EPIPE || r == -ECONNRESET) {
		pid_t pid;
		int status = reap_runner(vm, RUNNER_EXIT_TIMEOUT, &pid);

		runner_report(vm, pid, status, " before its handshake");
		goto fail_runner;
	}
	if (r < 0) {
		bh_err("handshake with the vCPU runner failed: %s",
		       strerror(-r));
		goto fail_runner;
	}
	r = vm_check_kvm(vm);
	if (r < 0) {
		if (!vm->host_refused)
			bh_err("the vCPU runner did not probe /dev/kvm: %s",
			       strerror(-r));
		goto fail_runner;
	}

	fill_regions(vm, regs, ptrs);
	setup.n_regions = vm->mem.layout.nregions;
	setup.regions = ptrs;
	setup.vcpus = vm->cfg->vcpus;
	setup.boot_vcpu = &st;
	setup.memfd_size = vm->mem.layout.ram_size;
	setup.serial = vm->cfg->serial != BH_SERIAL_OFF;
	r = runner_send(vm, BH__MSG_TYPE__MSG_RUNNER_SETUP, &setup.base,
			&vm->mem.memfd, 1);
	if (r < 0) {
		bh_err("cannot send the VM description: %s", strerror(-r));
		goto fail_runner;
	}
	r = bh_frame_read_timeout(vm->ctl, &vm->reader, &f,
				  RUNNER_SETUP_TIMEOUT);
	if (r == 0)
		r = runner_dispatch(vm, &f);
	if (r == 0 && vm->cs != CS_RUNNING)
		r = -EPROTO;
	if (r < 0) {
		if (r == -EPIPE || r == -ECONNRESET) {
			pid_t pid;
			int status = reap_runner(vm, RUNNER_EXIT_TIMEOUT, &pid);

			runner_report(vm, pid, status,
				      " while building the VM");
		} else {
			bh_err("vCPU runner did not get ready: %s",
			       strerror(-r));
		}
		goto fail_runner;
	}
	r = bh_devices_attach(vm->devs, runner_send_relay, vm);
	if (r < 0)
		goto fail_runner;
	if (vm->restore) {
		r = restore_runner(vm);
		if (r < 0)
			goto fail_runner;
	}
	r = runner_send(vm, BH__MSG_TYPE__MSG_RUNNER_START, &start.base, NULL,
			0);
	if (r < 0)
		goto fail_runner;
	if (vm->restore) {
		/* The runner parks the vCPUs at once. */
		vm->paused = true;
		stdin_hold(vm, true);
		bh_snapshot_in_free(vm->restore);
		free(vm->restore);
		vm->restore = NULL;
		bh_info("VM restored, paused");
	}

	/* From here on every send to the runner is queued (runner_send). */
	if (!vm->out_timer)
		vm->out_timer = evtimer_new(vm->base, on_out_timer, vm);
	vm->out_ev = event_new(vm->base, vm->ctl, EV_WRITE | EV_PERSIST,
			       on_ctl_writable, vm);
	vm->ctl_ev =
	    event_new(vm->base, vm->ctl, EV_READ | EV_PERSIST, on_ctl, vm);
	if (!vm->out_timer || !vm->out_ev || !vm->ctl_ev ||
	    event_add(vm->ctl_ev, NULL) < 0) {
		r = -ENOMEM;
		goto fail_runner;
	}
	bh_debug("boot %u started", vm->boots);
	return 0;

fail_runner:
	runner_kill(vm);
	return r < 0 ? r : -EIO;
fail:
	runner_teardown(vm);
	return r;
}

/* ---- console input and signals ----------------------------------------- */

/* A paused VM takes no input: it waits in the terminal's buffer. */
static void stdin_hold(struct bh_vm *vm, bool hold)
{
	if (!vm->stdin_ev || vm->stdin_eof)
		return;
	if (hold)
		event_del(vm->stdin_ev);
	else
		event_add(vm->stdin_ev, NULL);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
	Bh__SerialData d = BH__SERIAL_DATA__INIT;
	struct bh_vm *vm = arg;
	uint8_t buf[4096];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* No more input; the guest keeps running. */
		vm->stdin_eof = true;
		event_del(vm->stdin_ev);
		return;
	}
	if (vm->cs != CS_RUNNING)
		return;
	d.data.data = buf;
	d.data.len = (size_t)n;
	if (runner_send(vm, BH__MSG_TYPE__MSG_SERIAL_IN, &d.base, NULL, 0) < 0)
		bh_log_ratelimited(BH_LOG_WARN, "serial input lost");
}

/* The guest did not power off in time after SIGTERM: stop it. */
static void on_term_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct bh_vm *vm = arg;

	bh_warn("the guest did not power off within %d s: stopping it",
		TERM_GRACE_S);
	if (vm->cs == CS_RUNNING) {
		send_quit(vm, AFTER_SIGNAL);
		return;
	}
	runner_kill(vm);
	vm_finish(vm, vm->signal_code);
}

/*
 * SIGTERM, as systemd sends it, asks the guest to power off through the
 * ACPI power button, and stops the VM after TERM_GRACE_S if it does not;
 * a guest that powers off ends bulkhead with status 0. SIGINT, SIGHUP and
 * a second SIGTERM stop the VM at once.
 */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct bh_vm *vm = arg;
	struct timeval grace = { .tv_sec = TERM_GRACE_S };
	Bh__Empty e = BH__EMPTY__INIT;

	vm->signal_code = 128 + (int)sig;
	if (sig == SIGTERM && !vm->terminating && vm->cs == CS_RUNNING &&
	    vm->after == AFTER_NOTHING) {
		vm->terminating = true;
		notify("STOPPING=1\nSTATUS=Power button pressed, waiting for "
		       "the guest to power off");
		if (vm->paused && bh_vm_resume(vm) < 0)
			bh_warn("cannot resume the paused VM");
		vm->term_ev = evtimer_new(vm->base, on_term_timeout, vm);
		if (vm->term_ev && event_add(vm->term_ev, &grace) == 0 &&
		    runner_send(vm, BH__MSG_TYPE__MSG_POWER_BUTTON, &e.base,
				NULL, 0) == 0) {
			bh_warn(
			    "received %s: pressed the power button; the VM "
			    "is stopped in %d s unless the guest powers off",
			    strsignal((int)sig), TERM_GRACE_S);
			return;
		}
		bh_warn("cannot press the power button");
	}
	bh_warn("received %s: stopping the VM", strsignal((int)sig));
	if (vm->cs == CS_RUNNING) {
		/* The runner reports its last statistics and exits; a second
		 * signal, or a runner that does not go, ends it at once. */
		send_quit(vm, AFTER_SIGNAL);
		return;
	}
	runner_kill(vm);
	vm_finish(vm, vm->signal_code);
}

/* The serial console on the terminal: its input watched, raw mode. */
static void console_attach(struct bh_vm *vm)
{
	int r;

	if (vm->console.in_fd >= 0) {
		vm->stdin_ev = event_new(vm->base, vm->console.in_fd,
					 EV_READ | EV_PERSIST, on_stdin, vm);
		if (!vm->stdin_ev || event_add(vm->stdin_ev, NULL) < 0) {
			/* e.g. stdin is a regular file: no live input */
			if (vm->stdin_ev)
				event_free(vm->stdin_ev);
			vm->stdin_ev = NULL;
		}
	}
	r = bh_console_start(&vm->console, vm->base);
	if (r < 0)
		bh_warn("cannot set up the serial console: %s", strerror(-r));
}

static void console_detach(struct bh_vm *vm)
{
	if (vm->stdin_ev) {
		event_free(vm->stdin_ev);
		vm->stdin_ev = NULL;
	}
	bh_console_stop(&vm->console);
	bh_console_restore(&vm->console);
}

/*
 * The launcher's socket is readable outside a request: it ended, or sent
 * what nobody asked for. Without it no boot, reboot or replacement worker
 * can start, so the VM stops and bulkhead ends, as when a child is lost.
 */
static void on_launcher(evutil_socket_t fd, short what, void *arg)
{
	struct bh_vm *vm = arg;

	event_del(vm->launcher_ev);
	/* Logged once, here or where a request found it gone. */
	bh_launcher_lost(vm->launcher);
	bh_err("stopping the VM and bulkhead: the launcher is gone");
	vm->terminating = true;
	if (vm->cs == CS_RUNNING) {
		send_quit(vm, AFTER_CRASH);
		return;
	}
	if (vm->cs == CS_STOPPING) {
		vm->after = AFTER_CRASH;
		return;
	}
	runner_kill(vm);
	vm_finish(vm, BH_EXIT_FAILURE);
}

/* libevent's own diagnostics go through our logger. */
static void libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_ERR)
		bh_err("libevent: %s", msg);
	else
		bh_debug("libevent: %s", msg);
}

int bh_vm_run(struct bh_vm *vm)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	int r;

	event_set_log_callback(libevent_log);
	vm->base = event_base_new();
	if (!vm->base) {
		bh_err("cannot create the event loop");
		return BH_EXIT_FAILURE;
	}
	for (size_t i = 0; i < BH_ARRAY_SIZE(sigs); i++) {
		vm->sig_ev[i] = evsignal_new(vm->base, sigs[i], on_signal, vm);
		if (!vm->sig_ev[i] || event_add(vm->sig_ev[i], NULL) < 0) {
			bh_err("cannot watch signal %d", sigs[i]);
			return BH_EXIT_FAILURE;
		}
	}
	if (bh_launcher_alive(vm->launcher)) {
		vm->launcher_ev =
		    event_new(vm->base, bh_launcher_fd(vm->launcher), EV_READ,
			      on_launcher, vm);
		if (!vm->launcher_ev || event_add(vm->launcher_ev, NULL) < 0) {
			bh_err("cannot watch the launcher");
			return BH_EXIT_FAILURE;
		}
	}
	if (vm->cfg)
		console_attach(vm);
	if (vm->proc_cfg->api_socket_path || vm->proc_cfg->api_socket_fd >= 0) {
		r = bh_vmapi_new(vm, vm->base, &vm->api);
		if (r < 0) {
			bh_console_restore(&vm->console);
			return BH_EXIT_FAILURE;
		}
	}
	/* Start-up is done: what needed root or the full set of system
	 * calls is behind us, and no child has started yet. */
	if (vm->lockdown) {
		r = vm->lockdown(vm->lockdown_arg);
		if (r != 0) {
			bh_vmapi_free(vm->api);
			vm->api = NULL;
			bh_console_restore(&vm->console);
			return r;
		}
	}
	vm->exit_code = BH_EXIT_FAILURE;
	if (!vm->cfg) {
		/* No VM yet: serve the API until shutdown-vmm or a signal. */
		bh_info("no VM yet: waiting for one through the API");
		vm->exit_code = 0;
		notify("READY=1\nSTATUS=No VM yet: waiting for one through "
		       "the API");
	} else if (vm_boot(vm) < 0) {
		bh_vmapi_free(vm->api);
		vm->api = NULL;
		bh_console_restore(&vm->console);
		/* A host that cannot run the VM is refused like a bad
		 * option: nothing of the guest ran. */
		return vm->host_refused || vm->restore_refused
			   ? BH_EXIT_USAGE
			   : BH_EXIT_FAILURE;
	} else if (vm->paused && !vm->api) {
		/* Restored: nothing could resume it but us. */
		if (bh_vm_resume(vm) < 0) {
			bh_err("cannot resume the restored VM");
			vm_finish(vm, BH_EXIT_FAILURE);
		}
		notify("READY=1\nSTATUS=Running");
	} else {
		/* The vCPUs run (or a restored VM waits for resume): the
		 * service is up. */
		notify(vm->paused ? "READY=1\nSTATUS=Paused (restored)"
				  : "READY=1\nSTATUS=Running");
	}
	event_base_dispatch(vm->base);
	if (vm->runner_pid > 0)
		runner_kill(vm);
	bh_vmapi_free(vm->api);
	vm->api = NULL;
	bh_console_restore(&vm->console);
	return vm->exit_code;
}

void bh_vm_set_lockdown(struct bh_vm *vm, int (*fn)(void *arg), void *arg)
{
	vm->lockdown = fn;
	vm->lockdown_arg = arg;
}

void bh_vm_set_launcher(struct bh_vm *vm, struct bh_launcher *l)
{
	vm->launcher = l;
	bh_devices_set_launcher(vm->devs, l);
}

void bh_vm_set_kmsg(struct bh_vm *vm, struct bh_kmsg *k)
{
	vm->kmsg = k;
	bh_devices_set_kmsg(vm->devs, k);
}

/* ---- for the management API --------------------------------------------- */

enum bh_vm_state bh_vm_state(const struct bh_vm *vm)
{
	if (!vm->cfg)
		return BH_VM_NONE;
	switch (vm->cs) {
	case CS_SETUP:
	case CS_RUNNING:
		return vm->paused ? BH_VM_PAUSED : BH_VM_RUNNING;
	case CS_STOPPING:
		/* A reboot keeps the VM running; the rest end it. */
		if (vm->after == AFTER_REBOOT)
			return BH_VM_RUNNING;
		return vm->paused ? BH_VM_PAUSED : BH_VM_RUNNING;
	default:
		return vm->booted ? BH_VM_STOPPED : BH_VM_CREATED;
	}
}

const struct bh_config *bh_vm_process_config(const struct bh_vm *vm)
{
	return vm->proc_cfg;
}

int bh_vm_define(struct bh_vm *vm, struct bh_config *cfg, char *err,
		 size_t errlen)
{
	const struct bh_config *p = vm->proc_cfg;
	int r;

	if (vm->cfg) {
		bh_config_free(cfg);
		snprintf(err, errlen, "a VM exists already");
		return -EEXIST;
	}
	/* The process's own options stay the process's. */
	free(cfg->name);
	cfg->name = bh_xstrdup(p->name);
	cfg->log_level = p->log_level;
	cfg->print_exit_stats = p->print_exit_stats;
	cfg->strict_sandbox = p->strict_sandbox;
	free(cfg->api_socket_path);
	cfg->api_socket_path = NULL;
	cfg->api_socket_fd = -1;
	vm->own_cfg = *cfg;
	vm->own_cfg_set = true;
	r = vm_prepare(vm, &vm->own_cfg, err, errlen);
	if (r < 0)
		return r;
	/* Before the loop runs (a restore from the command line),
	 * bh_vm_run attaches it. */
	if (vm->base)
		console_attach(vm);
	bh_info("VM created: %u vCPUs, %llu MiB, %u devices", vm->cfg->vcpus,
		(unsigned long long)(vm->cfg->memory / BH_MIB),
		bh_devices_count(vm->devs));
	return 0;
}

int bh_vm_restore(struct bh_vm *vm, const char *url, bool late, char *err,
		  size_t errlen)
{
	struct bh_snapshot_in *in;
	char dir[4096];
	int r;

	if (vm->cfg) {
		snprintf(err, errlen, "a VM exists already");
		return -EEXIST;
	}
	r = bh_snapshot_url(url, dir, sizeof(dir), err, errlen);
	if (r < 0)
		return r;
	in = calloc(1, sizeof(*in));
	if (!in)
		abort();
	r = bh_snapshot_read(dir, in, err, errlen);
	if (r < 0) {
		free(in);
		return r;
	}
	/* Once the sandbox is closed: what only start-up can open (as for
	 * create). */
	for (unsigned int i = 0; late && r == 0 && i < in->cfg.nnets; i++)
		if (in->cfg.nets[i].ip)
			r = bh_errf(err, errlen,
				    "the snapshot's %s sets the TAP's address, "
				    "which only start-up can: restore it with "
				    "bulkhead --restore",
				    in->cfg.nets[i].id);
	if (r < 0) {
		bh_snapshot_in_free(in);
		free(in);
		return r;
	}
	/* Disks from copies, for a second VM from the same snapshot. */
	for (unsigned int k = 0; r == 0 && k < vm->proc_cfg->nrestore_disks;
	     k++) {
		const char *id = vm->proc_cfg->restore_disks[k].id;
		unsigned int d = 0;

		while (d < in->cfg.ndisks && strcmp(in->cfg.disks[d].id, id))
			d++;
		if (d == in->cfg.ndisks) {
			r = bh_errf(err, errlen,
				    "--restore-disk: the snapshot has no disk "
				    "'%s'",
				    id);
			break;
		}
		free(in->cfg.disks[d].path);
		in->cfg.disks[d].path =
		    bh_xstrdup(vm->proc_cfg->restore_disks[k].path);
	}
	if (r < 0) {
		bh_snapshot_in_free(in);
		free(in);
		return r;
	}
	/* The configuration becomes the VM's (bh_vm_define takes it). */
	in->cfg_set = false;
	r = bh_vm_define(vm, &in->cfg, err, errlen);
	if (r == 0)
		r = bh_devices_restore(vm->devs, in->state->devices,
				       in->state->n_devices, err, errlen);
	if (r < 0) {
		if (vm->cfg)
			bh_vm_delete(vm);
		bh_snapshot_in_free(in);
		free(in);
		return r;
	}
	vm->restore = in;
	bh_info("VM defined from the snapshot in %s", dir);
	return 0;
}

int bh_vm_delete(struct bh_vm *vm)
{
	if (!vm->cfg)
		return -ENOENT;
	if (vm->runner_pid > 0 || vm->cs != CS_NONE)
		runner_kill(vm);
	console_detach(vm);
	vm_release(vm);
	bh_info("VM deleted");
	return 0;
}

int bh_vm_serial_counters(struct bh_vm *vm, uint64_t *written,
			  uint64_t *dropped, uint64_t *truncations)
{
	if (!vm->cfg)
		return -ENOENT;
	return bh_console_counters(&vm->console, written, dropped, truncations);
}

const struct bh_config *bh_vm_config(const struct bh_vm *vm)
{
	return vm->cfg;
}

struct bh_devices *bh_vm_devices(struct bh_vm *vm)
{
	return vm->devs;
}

static int runner_send_empty(struct bh_vm *vm, Bh__MsgType type)
{
	Bh__Empty e = BH__EMPTY__INIT;

	if (vm->cs != CS_RUNNING)
		return -ENOTCONN;
	return runner_send(vm, type, &e.base, NULL, 0);
}

/*
 * Pause, in this order: the vCPUs (RUNNER_PAUSE, answered by RUNNER_PAUSED),
 * then every device worker (bh_devices_pause), and the VM is Paused once
 * all have confirmed. Terminal input waits meanwhile.
 */
int bh_vm_pause(struct bh_vm *vm)
{
	int r;

	if (vm->paused || vm->pause_pending)
		return -EALREADY;
	/* The runner answers in order, and a refusal is an ERROR for either:
	 * a pause waits until the dirty log requests are answered. */
	if (bh_dirty_runner_busy(vm->devs))
		return -EBUSY;
	r = runner_send_empty(vm, BH__MSG_TYPE__MSG_RUNNER_PAUSE);
	if (r == 0) {
		vm->pause_pending = true;
		vm->runner_paused = false;
		stdin_hold(vm, true);
	}
	return r;
}

/* Resume, the other way round: the workers first, so that the first kick
 * of a vCPU finds its worker serving. */
int bh_vm_resume(struct bh_vm *vm)
{
	int r;

	if (!vm->paused)
		return -EALREADY;
	bh_devices_resume(vm->devs);
	r = runner_send_empty(vm, BH__MSG_TYPE__MSG_RUNNER_RESUME);
	if (r == 0) {
		vm->paused = false;
		vm->runner_paused = false;
		stdin_hold(vm, false);
		bh_info("VM resumed");
	}
	return r;
}

int bh_vm_add_device(struct bh_vm *vm, struct bh_config *one,
		     unsigned int *index, char *err, size_t errlen)
{
	int r;

	if (vm->cs != CS_RUNNING || vm->add_pending || bh_vm_dirty_active(vm)) {
		bh_config_free(one);
		free(one);
		snprintf(err, errlen, "%s",
			 vm->cs != CS_RUNNING ? "the VM is not running"
			 : vm->add_pending    ? "another device is being added"
					      : "a migration is under way");
		return vm->cs != CS_RUNNING ? -ENOTCONN : -EBUSY;
	}
	/* Sends RUNNER_ADD_DEVICE; RUNNER_DEVICE_ADDED answers it. */
	r = bh_devices_add(vm->devs, one, index, err, errlen);
	if (r < 0)
		return r;
	vm->add_pending = true;
	vm->add_index = *index;
	return 0;
}

int bh_vm_remove_device(struct bh_vm *vm, const char *id, char *err,
			size_t errlen)
{
	if (vm->cs != CS_RUNNING) {
		snprintf(err, errlen, "the VM is not running");
		return -ENOTCONN;
	}
	if (vm->add_pending &&
	    bh_devices_find(vm->devs, id) == (int)vm->add_index) {
		snprintf(err, errlen, "device %s is still being added", id);
		return -EBUSY;
	}
	if (bh_vm_dirty_active(vm)) {
		snprintf(err, errlen, "a migration is under way");
		return -EBUSY;
	}
	return bh_devices_remove(vm->devs, id, err, errlen);
}

int bh_vm_power_button(struct bh_vm *vm)
{
	return runner_send_empty(vm, BH__MSG_TYPE__MSG_POWER_BUTTON);
}

const char *bh_vm_host_refusal(const struct bh_vm *vm)
{
	return vm->host_refused ? vm->refusal : NULL;
}

int bh_vm_boot(struct bh_vm *vm)
{
	if (!vm->cfg)
		return -ENOENT;
	if (vm->cs != CS_NONE)
		return -EALREADY;
	return vm_boot(vm);
}

int bh_vm_stop(struct bh_vm *vm, enum bh_vm_stop how)
{
	static const enum after_stop afters[] = {
		[BH_VM_STOP_SHUTDOWN] = AFTER_SHUTDOWN,
		[BH_VM_STOP_REBOOT] = AFTER_REBOOT,
		[BH_VM_STOP_EXIT] = AFTER_EXIT,
	};

	switch (vm->cs) {
	case CS_RUNNING:
		send_quit(vm, afters[how]);
		return 0;
	case CS_STOPPING:
		/* Already on its way out: what follows is ours to decide,
		 * unless a signal decided it first. */
		if (vm->after != AFTER_SIGNAL)
			vm->after = afters[how];
		return 0;
	case CS_NONE:
		if (how == BH_VM_STOP_EXIT) {
			vm_finish(vm, 0);
			return 0;
		}
		return -ENOTCONN;
	default:
		return -EBUSY;
	}
}

/* ---- for live migration ------------------------------------------------- */

int bh_vm_pause_then(struct bh_vm *vm, bh_vm_done_fn done, void *arg)
{
	int r;

	if (vm->pause_cb)
		return -EBUSY;
	r = bh_vm_pause(vm);
	if (r == 0) {
		vm->pause_cb = done;
		vm->pause_arg = arg;
	}
	return r;
}

bool bh_vm_paused(const struct bh_vm *vm)
{
	return vm->cs == CS_RUNNING && vm->paused;
}

int bh_vm_save_state(struct bh_vm *vm, bh_vm_state_fn done, void *arg,
		     char *err, size_t errlen)
{
	int r;

	if (vm->cs != CS_RUNNING || !vm->paused) {
		snprintf(err, errlen, "the VM is not paused");
		return -ENOTCONN;
	}
	if (vm->snap.pending) {
		snprintf(err, errlen, "a snapshot is under way");
		return -EBUSY;
	}
	r = save_begin(vm, err, errlen);
	if (r < 0)
		return r;
	vm->state_cb = done;
	vm->state_arg = arg;
	return 0;
}

void bh_vm_on_gone(struct bh_vm *vm, void (*fn)(void *arg), void *arg)
{
	vm->gone_cb = fn;
	vm->gone_arg = arg;
}

int bh_vm_memfd(const struct bh_vm *vm)
{
	return vm->cs == CS_RUNNING ? vm->mem.memfd : -1;
}

uint64_t bh_vm_ram_size(const struct bh_vm *vm)
{
	return vm->mem.layout.ram_size;
}

void bh_vm_current_config(const struct bh_vm *vm, struct bh_config *out)
{
	bh_devices_config(vm->devs, vm->cfg, out);
}

int bh_vm_check_savable(const struct bh_vm *vm, const char *opener, char *err,
			size_t errlen)
{
	struct bh_config now;

	bh_devices_config(vm->devs, vm->cfg, &now);
	for (unsigned int i = 0; i < now.nnets; i++)
		if (!now.nets[i].tap)
			return bh_errf(err, errlen,
				       "device %s was given its TAP as fd=: %s "
				       "could not open it again",
				       now.nets[i].id, opener);
	return bh_devices_check_savable(vm->devs, err, errlen);
}

int bh_vm_set_incoming(struct bh_vm *vm, Bh__SnapshotState *state, int memfd,
		       char *err, size_t errlen)
{
	struct bh_snapshot_in *in;
	int r = 0;

	if (!vm->cfg || vm->restore || vm->cs != CS_NONE) {
		r = bh_errf(err, errlen, "no VM waits for a state");
		goto fail;
	}
	if (state->ram_size != vm->cfg->memory) {
		r = bh_errf(err, errlen,
			    "the state is of %llu bytes of guest RAM, the "
			    "configuration of %llu",
			    (unsigned long long)state->ram_size,
			    (unsigned long long)vm->cfg->memory);
		goto fail;
	}
	if (!state->runner || state->runner->vcpus != vm->cfg->vcpus ||
	    state->n_cpus != vm->cfg->vcpus) {
		r = bh_errf(err, errlen,
			    "the state's vCPUs do not match the %u of the "
			    "configuration",
			    vm->cfg->vcpus);
		goto fail;
	}
	for (size_t i = 0; i < state->n_cpus; i++)
		if (!state->cpus[i]) {
			r = bh_errf(err, errlen, "the state lacks a vCPU");
			goto fail;
		}
	r = bh_devices_restore(vm->devs, state->devices, state->n_devices, err,
			       errlen);
	if (r < 0)
		goto fail;
	in = calloc(1, sizeof(*in));
	if (!in)
		abort();
	in->dirfd = -1;
	in->memfd = memfd;
	in->state = state;
	vm->restore = in;
	return 0;
fail:
	bh__snapshot_state__free_unpacked(state, NULL);
	if (memfd >= 0)
		close(memfd);
	return r < 0 ? r : -EINVAL;
}

void bh_vm_exit(struct bh_vm *vm, int code)
{
	if (vm->cs == CS_NONE) {
		vm_finish(vm, code);
		return;
	}
	vm->exit_code = code;
	bh_vm_stop(vm, BH_VM_STOP_EXIT);
}
