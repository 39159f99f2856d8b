/* bzimage: placeholder, being written. */
