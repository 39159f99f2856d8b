/* vm: placeholder, being written. */
