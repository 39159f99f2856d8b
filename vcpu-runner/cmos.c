/* cmos: placeholder, being written. */
