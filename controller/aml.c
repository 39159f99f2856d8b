/* aml: placeholder, being written. */
