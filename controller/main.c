/* bulkhead: the controller. Parses the VM configuration, checks it, and
 * runs the VM through its sandboxed children. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <bulkhead/log.h>

#include "conffile.h"
#include "config.h"
#include "vm.h"

int main(int argc, char **argv)
{
	struct bh_config cfg;
	struct bh_vm *vm = NULL;
	char err[512] = "";
	char prefix[64];
	int r;

	bh_log_init("bulkhead");
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
