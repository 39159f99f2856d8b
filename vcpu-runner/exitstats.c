/* exitstats: placeholder, being written. */
