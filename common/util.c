/* util: placeholder, being written. */
