/* console: placeholder, being written. */
