/*
 * Fuzz target: VmConfig conversion (controller/apiconfig.c): the input is a
 * packed VmConfig; a configuration it yields must convert back to a
 * VmConfig that converts again.
 */
#include <stdint.h>
#include <stdlib.h>

#include <bulkhead/log.h>

#include "apiconfig.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	bh_log_init("fuzz-apiconfig");
	bh_log_set_level(BH_LOG_ERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Bulkhead__Api__V1__VmConfig *vc, *back = NULL;
	struct bh_config cfg, again;
	char err[512];

	vc = bulkhead__api__v1__vm_config__unpack(NULL, size, data);
	if (!vc)
		return 0;
	if (bh_apiconfig_from_proto(vc, &cfg, err, sizeof(err)) == 0) {
		if (bh_apiconfig_to_proto(&cfg, &back) < 0)
			abort();
		if (bh_apiconfig_from_proto(back, &again, err, sizeof(err)) < 0)
			abort();
		bh_config_free(&again);
		bh_apiconfig_free_proto(back);
		bh_config_free(&cfg);
	}
	bulkhead__api__v1__vm_config__free_unpacked(vc, NULL);
	return 0;
}
