/* acpi: placeholder, being written. */
