/* layout: placeholder, being written. */
