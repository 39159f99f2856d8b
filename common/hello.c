/* hello: placeholder, being written. */
