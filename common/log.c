/* log: placeholder, being written. */
