/* bulkhead: the controller. Parses the VM configuration, checks it, and
 * runs the VM through its sandboxed children. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/sandbox.h>
#include <bulkhead/spawn.h>
#include <bulkhead/util.h>

#include "conffile.h"
#include "config.h"
#include "ctlseccomp.h"
#include "kmsg.h"
#include "user.h"
#include "vm.h"

/* What the controller gives up once start-up is done (bh_vm_run calls
 * lockdown before the first child starts). */
struct lockdown {
	const struct bh_config *cfg;
	struct bh_user user;
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
	if (ld->cfg->self_test == BH_SELF_TEST_CONTROLLER) {
		/* Only for tests: the filter must kill us right here. */
		long r2 = ptrace(PTRACE_TRACEME, 0, NULL, NULL);

		bh_err("self-test: ptrace returned %ld: the seccomp filter is "
		       "not in force",
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
	};
	bool all = strcmp(which, "all") == 0, found = false;
	int rc = 0;

	if (all || strcmp(which, "controller") == 0) {
		found = true;
		bh_ctl_seccomp_print(stdout);
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
		if (bh_find_child(children[i][1], BULKHEAD_LIBEXECDIR, path,
				  sizeof(path)) < 0) {
			fprintf(stderr, "bulkhead: cannot find %s\n",
				children[i][1]);
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
			"controller, vcpu, blk, console, rng, all\n",
			which);
		return BH_EXIT_USAGE;
	}
	return rc;
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
		bh_kmsg_close(&kmsg);
		bh_config_free(&cfg);
		return BH_EXIT_USAGE;
	}
	bh_vm_set_kmsg(vm, &kmsg);
	bh_vm_set_lockdown(vm, lockdown, &ld);
	r = bh_vm_run(vm);
	bh_vm_destroy(vm);
	bh_kmsg_close(&kmsg);
	bh_config_free(&cfg);
	return r;
}
