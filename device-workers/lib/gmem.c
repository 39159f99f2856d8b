/* lib/gmem: placeholder, being written. */
