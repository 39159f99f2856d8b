/* A user of libbulkhead-client's device calls, for test_hotplug_api.py:
 *   client_hotplug SOCKET add-disk PATH [ID]   prints "ID TYPE PCI_ADDRESS"
 *   client_hotplug SOCKET add-pmem FILE [ID]   the same (the file's size)
 *   client_hotplug SOCKET remove ID
 * and on an error from the VMM "CODE: message" on stderr, exit status 1. */
#include <stdio.h>
#include <string.h>

#include <bulkhead/client.h>

int main(int argc, char **argv)
{
	Bulkhead__Api__V1__DiskConfig disk =
	    BULKHEAD__API__V1__DISK_CONFIG__INIT;
	Bulkhead__Api__V1__PmemConfig pmem =
	    BULKHEAD__API__V1__PMEM_CONFIG__INIT;
	const Bulkhead__Api__V1__DeviceInfo *di;
	Bulkhead__Api__V1__Response *resp = NULL;
	struct bh_client *c;
	char err[256];
	int r, status = 0;

	if (argc < 4)
		return 2;
	if (bh_client_connect(argv[1], 10000, "client_hotplug", &c, err,
			      sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 3;
	}
	if (strcmp(argv[2], "add-disk") == 0) {
		disk.path = argv[3];
		if (argc > 4)
			disk.id = argv[4];
		r = bh_client_add_disk(c, &disk, 30000, &resp);
	} else if (strcmp(argv[2], "add-pmem") == 0) {
		pmem.file = argv[3];
		if (argc > 4)
			pmem.id = argv[4];
		r = bh_client_add_pmem(c, &pmem, 30000, &resp);
	} else {
		r = bh_client_remove_device(c, argv[3], 30000, &resp);
	}
	if (r < 0) {
		fprintf(stderr, "%s\n", bh_client_last_error(c));
		status = 3;
	} else if (bh_client_error_code(resp) !=
		   BULKHEAD__API__V1__ERROR_CODE__ERROR_NONE) {
		fprintf(stderr, "%s: %s\n",
			bh_client_error_code_name(bh_client_error_code(resp)),
			bh_client_error_message(resp));
		status = 1;
	} else if ((di = bh_client_device_info(resp)) != NULL) {
		printf("%s %s %s\n", di->id, di->type, di->pci_address);
	} else if (strncmp(argv[2], "add-", 4) == 0) {
		fprintf(stderr, "an %s answer without its device\n", argv[2]);
		status = 4;
	}
	bh_client_response_free(resp);
	bh_client_close(c);
	return status;
}
