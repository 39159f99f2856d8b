/* guestmem: placeholder, being written. */
