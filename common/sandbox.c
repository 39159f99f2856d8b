/* sandbox: placeholder, being written. */
