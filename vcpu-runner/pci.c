/* pci: placeholder, being written. */
