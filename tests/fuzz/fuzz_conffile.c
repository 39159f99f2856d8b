/*
 * Fuzz target: the config-file parser (controller/conffile.c): the input is
 * the file's text, split into options and parsed into a configuration.
 */
#include <stdint.h>
#include <stdlib.h>

#include <bulkhead/log.h>

#include "conffile.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	bh_log_init("fuzz-conffile");
	bh_log_set_level(BH_LOG_ERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bh_conffile *f = NULL;
	struct bh_config cfg;
	char err[512];

	if (bh_conffile_parse_text("fuzz.conf", (const char *)data, size, &f,
				   err, sizeof(err)) < 0)
		return 0;
	if (bh_conffile_config(f, &cfg, err, sizeof(err)) == 0)
		bh_config_free(&cfg);
	bh_conffile_free(f);
	return 0;
}
