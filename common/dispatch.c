/* dispatch: placeholder, being written. */
