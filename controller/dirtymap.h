/* One writer's dirty bitmap in the controller: a sealed memfd, mapped
 * shared, that the writer (the vCPU runner or one device worker) sets bits
 * in; and the take that merges and clears every writer's bitmap each pass
 * of a live migration. */
#ifndef BH_CONTROLLER_DIRTYMAP_H
#define BH_CONTROLLER_DIRTYMAP_H

#include <stddef.h>
#include <stdint.h>

/* One bit per this many bytes of the guest-RAM memfd. */
#define BH_DIRTYMAP_PAGE 4096ULL

struct bh_dirtymap {
	int fd;		 /* owned, -1 when none */
	uint64_t *words; /* the mapping, NULL when none */
	uint64_t nwords;
};

/* 64-bit words of bitmap a guest-RAM memfd of ram_size needs: one bit per
 * BH_DIRTYMAP_PAGE of it (internal.proto, DirtyLog). */
uint64_t bh_dirtymap_words(uint64_t ram_size);

/*
 * A bitmap for a guest RAM of ram_size, all clear: memfd_create
 * ("bulkhead-dirty-log", MFD_CLOEXEC | MFD_ALLOW_SEALING), sized, sealed
 * with F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL (a writer maps it trusting
 * its size, and none may change it under another), mapped shared. 0 or
 * -errno, with nothing left open.
 */
int bh_dirtymap_create(struct bh_dirtymap *m, uint64_t ram_size);
/* Unmaps and closes; m may be empty (fd -1). */
void bh_dirtymap_destroy(struct bh_dirtymap *m);
static inline void bh_dirtymap_init(struct bh_dirtymap *m)
{
	m->fd = -1;
	m->words = NULL;
	m->nwords = 0;
}

/*
 * ORs the first nwords words of each of the n bitmaps (each words_each
 * words long; NULL entries are skipped) into out, and clears what it took:
 * each non-zero word is taken with an atomic exchange against 0 (acquire:
 * the writes the bits stand for are seen), so that a bit a writer sets
 * during the take is either taken now or left for the next take, never
 * lost. Words past nwords stay (nwords is cut to words_each). Returns
 * the number of bits set in out's first nwords words afterwards.
 */
uint64_t bh_dirtymap_take(uint64_t *const *bitmaps, size_t n,
			  uint64_t words_each, uint64_t *out, size_t nwords);

#endif
