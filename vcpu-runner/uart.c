/* uart: placeholder, being written. */
