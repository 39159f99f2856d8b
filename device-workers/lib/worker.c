/* lib/worker: placeholder, being written. */
