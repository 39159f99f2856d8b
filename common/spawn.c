/* spawn: placeholder, being written. */
