/* cpuid: placeholder, being written. */
