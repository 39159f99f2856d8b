/* ACPI tables for the guest: RSDP, XSDT, FADT (hardware-reduced), DSDT, MADT.
 */
#ifndef BH_CONTROLLER_ACPI_H
#define BH_CONTROLLER_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct bh_acpi_config {
	unsigned int vcpus; /* Local APIC entries with ids 0..vcpus-1 */
};

struct bh_acpi_result {
	uint64_t rsdp_gpa;
	size_t used; /* bytes of the buffer used */
};

/*
 * Builds every table into buf, which will sit at guest address buf_gpa
 * (BH_ACPI_ADDR), RSDP first. Table addresses are absolute guest addresses.
 * -ENOSPC if buflen is too small, -EINVAL for 0 or too many vCPUs.
 */
int bh_acpi_build(uint8_t *buf, size_t buflen, uint64_t buf_gpa,
		  const struct bh_acpi_config *cfg, struct bh_acpi_result *out);

#endif
