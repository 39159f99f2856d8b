/* lib/virtqueue: placeholder, being written. */
