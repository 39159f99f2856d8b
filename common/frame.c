/* frame: placeholder, being written. */
