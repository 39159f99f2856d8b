/* bulkhead: the controller. Parses the VM configuration, checks it, and
 * runs the VM through its sandboxed children. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "binder.h"
#include "migrate.h"
#include "conffile.h"
#include "config.h"
#include "ctlseccomp.h"
#include "hostcheck.h"
#include "kmsg.h"
#include "launcher.h"
#include "user.h"
#include "vm.h"
#include "vsock.h"

/* What the controller gives up once start-up is done (bh_vm_run calls
 * lockdown before the first child starts). */
struct lockdown {
	const struct bh_config *cfg;
	struct bh_user user;
	/* makes the listening sockets once the filter has no bind or
	 * listen */
	struct bh_binder *binder;
};

/* Descriptors the controller may open after start-up, beyond those it holds
 * then: API clients, and per device its worker's socket, eventfds, backend
 * and in-flight records. */
#define CTL_MORE_FDS 4096

/* Allocations from this size up get mappings of their own. */
#define CTL_MMAP_THRESHOLD (256 * 1024)

static int lockdown(void *arg)
{
	struct lockdown *ld = arg;
	char err[512];
	int r;

	if (ld->cfg->user) {
		r = bh_user_switch(&ld->user, err, sizeof(err));
		if (r < 0) {
			bh_err("%s; not starting", err);
			return BH_EXIT_FAILURE;
		}
		bh_info("running as uid %u, gid %u, with no capability",
			(unsigned int)ld->user.uid, (unsigned int)ld->user.gid);
	} else {
		/* From here on the controller opens images as its uid, kills
		 * and reaps its own children and asks the launcher for new
		 * ones: nothing that needs a capability. Root keeps its
		 * uid, and with it the files root owns. */
		r = bh_sandbox_drop_caps();
		if (r < 0) {
			bh_err("cannot drop capabilities: %s; not starting",
			       strerror(-r));
			return BH_EXIT_FAILURE;
		}
		if (geteuid() == 0)
			bh_warn("running as root without --user: every "
				"capability is dropped, but the files root "
				"owns stay open to this process; give it a "
				"user of its own (--user, or systemd's "
				"User=)");
	}
	/* With or without --user: not dumpable (no core file with guest
	 * memory, no ptrace or /proc reading by the user's other processes),
	 * no core files, and a bound on descriptors. */
	r = bh_sandbox_no_new_privs();
	if (r == 0)
		r = bh_sandbox_limits(CTL_MORE_FDS);
	if (r < 0) {
		bh_err("cannot limit the controller: %s; not starting",
		       strerror(-r));
		return BH_EXIT_FAILURE;
	}
	if (bh_ctl_seccomp_install() < 0)
		return BH_EXIT_FAILURE;
	bh_debug("seccomp allow-list loaded (--print-policy controller)");
	/* A vsock device's listener made from now on (through the API) is
	 * the binder's. */
	bh_vsock_set_binder(ld->binder);
	bh_migrate_set_binder(ld->binder);
	if (ld->cfg->self_test == BH_SELF_TEST_CONTROLLER) {
		/* Only for tests: the filter must kill us right here. */
		long r2 = ptrace(PTRACE_TRACEME, 0, NULL, NULL);

		bh_err("self-test: ptrace returned %ld: the seccomp filter is "
		       "not in force",
		       r2);
		return BH_EXIT_FAILURE;
	}
	if (ld->cfg->self_test == BH_SELF_TEST_IO_URING) {
		/* An io_uring would carry socket, connect or openat past
		 * every rule of the list: the filter must kill us here. */
		struct io_uring_params p;
		long r2;

		memset(&p, 0, sizeof(p));
		r2 = syscall(SYS_io_uring_setup, 1, &p);
		bh_err("self-test: io_uring_setup returned %ld: the controller "
		       "may use io_uring",
		       r2);
		return BH_EXIT_FAILURE;
	}
	return 0;
}

/*
 * bulkhead --print-policy PROCESS: each child prints its own seccomp
 * allow-list (--print-policy), so what is printed is what it loads.
 */
static int print_policy(const char *which)
{
	static const char *const children[][2] = {
		{ "vcpu", "bulkhead-vcpu" },
		{ "blk", "bulkhead-dev-blk" },
		{ "console", "bulkhead-dev-console" },
		{ "rng", "bulkhead-dev-rng" },
		{ "net", "bulkhead-dev-net" },
		{ "vsock", "bulkhead-dev-vsock" },
		{ "pmem", "bulkhead-dev-pmem" },
	};
	bool all = strcmp(which, "all") == 0, found = false;
	char dir[4096];
	int rc = 0;

	if (bh_child_dir(BULKHEAD_BINDIR, BULKHEAD_LIBEXECDIR, dir,
			 sizeof(dir)) < 0) {
		fprintf(stderr,
			"bulkhead: cannot tell where its programs are\n");
		return BH_EXIT_FAILURE;
	}

	if (all || strcmp(which, "controller") == 0) {
		found = true;
		bh_ctl_seccomp_print(stdout);
	}
	if (all || strcmp(which, "launcher") == 0) {
		found = true;
		bh_launcher_seccomp_print(stdout);
	}
	if (all || strcmp(which, "binder") == 0) {
		found = true;
		bh_binder_seccomp_print(stdout);
	}
	for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
		char path[4096];
		char *argv[] = { (char *)children[i][1], "--print-policy",
				 NULL };
		int status = 0;
		pid_t pid;

		if (!all && strcmp(which, children[i][0]) != 0)
			continue;
		found = true;
		fflush(stdout);
		if (bh_find_child(children[i][1], dir, path, sizeof(path)) <
		    0) {
			fprintf(stderr, "bulkhead: cannot find %s in %s\n",
				children[i][1], dir);
			rc = BH_EXIT_FAILURE;
			continue;
		}
		pid = fork();
		if (pid == 0) {
			execv(path, argv);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) != pid ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			rc = BH_EXIT_FAILURE;
	}
	if (!found) {
		fprintf(stderr,
			"bulkhead: --print-policy: '%s' is not one of "
			"controller, launcher, binder, vcpu, blk, console, "
			"rng, net, vsock, pmem, all\n",
			which);
		return BH_EXIT_USAGE;
	}
	return rc;
}

/*
 * bulkhead --check-host[=kvm]: one line per check, pass, warn or FAIL, then
 * a verdict; 0 only if a VM can run here. With --user the checks run as
 * that user, as the VM would.
 */
static int check_host(const struct bh_config *cfg, struct bh_user *user,
		      struct bh_launcher *launcher)
{
	struct bh_check_report rep = { .out = stdout };
	struct bh_host_facts facts;
	struct bh_kvm_report kvm;
	struct bh_vm *vm = NULL;
	char err[512];
	int r;

	if (cfg->user) {
		r = bh_user_switch(user, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "bulkhead: %s\n", err);
			return BH_EXIT_FAILURE;
		}
	}
	bh_host_facts_read(&facts);
	r = bh_vm_create(cfg, &vm, err, sizeof(err));
	if (r < 0) {
		bh_check_line(&rep, BH_CHECK_FAIL, "vcpu-runner", "%s", err);
	} else {
		bh_vm_set_launcher(vm, launcher);
		fflush(stdout);
		r = bh_vm_check_host(vm, &kvm);
		if (r < 0)
			bh_check_line(&rep, BH_CHECK_FAIL, "kvm-probe",
				      "the vCPU runner did not report on "
				      "/dev/kvm: %s (see above)",
				      strerror(-r));
		else
			bh_check_kvm(&rep, &facts, &kvm);
		bh_vm_destroy(vm);
	}
	if (cfg->check_host == BH_CHECK_HOST_ALL)
		bh_check_system(&rep);
	printf("%s: %u failed, %u warning%s\n",
	       rep.fails ? "a VM cannot run here" : "a VM can run here",
	       rep.fails, rep.warns, rep.warns == 1 ? "" : "s");
	fflush(stdout);
	return rep.fails ? BH_EXIT_FAILURE : 0;
}

/*
 * A standard fd that is closed would go to the next open (the API socket,
 * a disk image), which would then receive guest serial output or be made
 * non-blocking as if it were stdout: hold each such fd with /dev/null.
 */
static void hold_std_fds(void)
{
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		int n;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* The lowest free fd: this one, as those below are open. */
		n = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
		if (n >= 0 && n != fd)
			close(n);
	}
}

int main(int argc, char **argv)
{
	struct bh_config cfg;
	struct lockdown ld = { .cfg = &cfg };
	struct bh_kmsg kmsg = { .fd = -1 };
	struct bh_launcher_opts lo = { .name = NULL };
	struct bh_launcher *launcher = NULL;
	struct bh_vm *vm = NULL;
	char err[512] = "";
	char prefix[64];
	int r;

	hold_std_fds();
	bh_log_init("bulkhead");
	/* The boot images (megabytes) are read at each boot and freed once in
	 * guest RAM: a fixed threshold keeps such buffers in their own
	 * mappings, given back at free. glibc's default raises the threshold
	 * after the first such free, and the next ones stay in the heap. */
	mallopt(M_MMAP_THRESHOLD, CTL_MMAP_THRESHOLD);
	if (argc == 3 && strcmp(argv[1], "--print-policy") == 0)
		return print_policy(argv[2]);
	if (argc == 2 && strncmp(argv[1], "--print-policy=", 15) == 0)
		return print_policy(argv[1] + 15);
	/* --config FILE: the file's options, then the command line's. */
	r = bh_conffile_parse_cmdline(argc, argv, &cfg, err, sizeof(err));
	if (r == BH_CONFIG_EXIT)
		return 0;
	if (r < 0) {
		fprintf(stderr, "bulkhead: %s\nTry 'bulkhead --help'.\n", err);
		return BH_EXIT_USAGE;
	}
	snprintf(prefix, sizeof(prefix), "bulkhead/%s", cfg.name);
	bh_log_init(prefix);
	bh_log_set_level(cfg.log_level);
	/* A console reader that goes away must not kill us mid-write. */
	signal(SIGPIPE, SIG_IGN);

	/* --user is checked before anything is opened or started. */
	if (cfg.user) {
		r = bh_user_resolve(cfg.user, &ld.user, err, sizeof(err));
		if (r == 0 && geteuid() != 0 && !bh_user_is_current(&ld.user))
			r = bh_errf(err, sizeof(err),
				    "--user: only root can become another user "
				    "(this is uid %u; start bulkhead as root, "
				    "or leave --user out)",
				    (unsigned int)geteuid());
		if (r < 0) {
			fprintf(stderr, "bulkhead: %s\n", err);
			bh_config_free(&cfg);
			return BH_EXIT_USAGE;
		}
	}
	/* The launcher first, before anything is opened: it alone will start
	 * children, and holds nothing of ours but its socket. */
	lo.name = cfg.name;
	lo.log_level = cfg.log_level;
	lo.self_test = cfg.self_test;
	lo.strict_sandbox = cfg.strict_sandbox;
	lo.user = cfg.user ? &ld.user : NULL;
	if (bh_launcher_start(&lo, &launcher) < 0) {
		bh_config_free(&cfg);
		return BH_EXIT_FAILURE;
	}
	if (cfg.check_host) {
		r = check_host(&cfg, &ld.user, launcher);
		bh_launcher_stop(launcher);
		bh_config_free(&cfg);
		return r;
	}
	/* The binder next, still before anything is opened: it alone will
	 * bind and listen once the controller's filter is loaded, and holds
	 * nothing of ours but its socket. */
	r = bh_binder_start(cfg.name, cfg.user ? &ld.user : NULL, &ld.binder);
	if (r < 0) {
		bh_launcher_stop(launcher);
		bh_config_free(&cfg);
		return BH_EXIT_FAILURE;
	}
	/* The kernel log names what a seccomp filter killed a child for. It
	 * is often root's alone, or hidden (ProtectKernelLogs=): then the
	 * reports say where to look instead. */
	r = bh_kmsg_open(&kmsg);
	if (r < 0)
		bh_debug("/dev/kmsg: %s: a child killed by its seccomp filter "
			 "will not be named its system call",
			 strerror(-r));

	r = bh_vm_create(&cfg, &vm, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "bulkhead: %s\n", err);
		bh_binder_stop(ld.binder);
		bh_launcher_stop(launcher);
		bh_kmsg_close(&kmsg);
		bh_config_free(&cfg);
		return BH_EXIT_USAGE;
	}
	bh_vm_set_kmsg(vm, &kmsg);
	bh_vm_set_launcher(vm, launcher);
	/* The VM from a snapshot, before the sandbox closes (a TAP's
	 * address, a vsock socket). */
	if (cfg.restore_url) {
		r = bh_vm_restore(vm, cfg.restore_url, false, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "bulkhead: --restore: %s\n", err);
			bh_vm_destroy(vm);
			bh_binder_stop(ld.binder);
			bh_launcher_stop(launcher);
			bh_kmsg_close(&kmsg);
			bh_config_free(&cfg);
			return BH_EXIT_USAGE;
		}
	}
	bh_vm_set_lockdown(vm, lockdown, &ld);
	r = bh_vm_run(vm);
	bh_migrate_cleanup();
	bh_vm_destroy(vm);
	bh_vsock_set_binder(NULL);
	bh_migrate_set_binder(NULL);
	bh_binder_stop(ld.binder);
	bh_launcher_stop(launcher);
	bh_kmsg_close(&kmsg);
	bh_config_free(&cfg);
	return r;
}
