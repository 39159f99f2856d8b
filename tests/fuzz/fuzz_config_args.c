/*
 * Fuzz target: the command-line parser (bh_config_parse_args in
 * controller/config.c) with argv split from the input at NUL bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bulkhead/log.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_MAX_ARGS 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	bh_log_init("fuzz-config");
	bh_log_set_level(BH_LOG_ERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[FUZZ_MAX_ARGS + 2];
	char *text, *p, *end;
	struct bh_config cfg;
	char err[512];
	int argc = 1;

	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	argv[0] = (char *)"bulkhead";
	for (p = text, end = text + size; p <= end && argc <= FUZZ_MAX_ARGS;
	     p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	if (bh_config_parse_args(argc, argv, &cfg, err, sizeof(err)) == 0)
		bh_config_free(&cfg);
	free(text);
	return 0;
}
