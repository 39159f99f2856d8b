/* iobus: placeholder, being written. */
