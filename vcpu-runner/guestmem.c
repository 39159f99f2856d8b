/* Guest RAM in the runner: advice to the host kernel on its mapping. */
#include <sys/mman.h>

#include "guestmem.h"

unsigned int bh_guestmem_advise(void *addr, size_t len)
{
	unsigned int taken = 0;

	/* Guest RAM is not worth a core dump and must not be inherited. */
	if (madvise(addr, len, MADV_DONTDUMP) == 0)
		taken |= BH_GUESTMEM_DONTDUMP;
	if (madvise(addr, len, MADV_DONTFORK) == 0)
		taken |= BH_GUESTMEM_DONTFORK;
	/* Fails only where the kernel has no transparent huge pages. */
	if (madvise(addr, len, MADV_HUGEPAGE) == 0)
		taken |= BH_GUESTMEM_HUGEPAGE;
	return taken;
}
