/* bulkhead: the controller. Parses the VM configuration, checks it, and
 * runs the VM through its sandboxed children. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/spawn.h>

#include "conffile.h"
#include "config.h"
#include "vm.h"

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
		printf("bulkhead (controller): no seccomp allow-list; it holds "
		       "no KVM fd and needs no capability, and is the only "
		       "process that opens files and sockets\n");
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

int main(int argc, char **argv)
{
	struct bh_config cfg;
	struct bh_vm *vm = NULL;
	char err[512] = "";
	char prefix[64];
	int r;

	bh_log_init("bulkhead");
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

	r = bh_vm_create(&cfg, &vm, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "bulkhead: %s\n", err);
		bh_config_free(&cfg);
		return BH_EXIT_USAGE;
	}
	r = bh_vm_run(vm);
	bh_vm_destroy(vm);
	bh_config_free(&cfg);
	return r;
}
