/* boot: placeholder, being written. */
