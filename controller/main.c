/* main: placeholder, being written. */
