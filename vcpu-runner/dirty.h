/* KVM's dirty log of the vCPUs' writes, folded into the controller's bitmap
 * (RUNNER_DIRTY_LOG, RUNNER_DIRTY_SYNC): the parts that need no KVM. */
#ifndef BH_RUNNER_DIRTY_H
#define BH_RUNNER_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

/* One bit per this many bytes of the guest-RAM memfd. */
#define BH_DIRTY_PAGE 4096ULL

/* Bytes of bitmap a memfd of memfd_size needs: one bit per BH_DIRTY_PAGE,
 * rounded up to whole 64-bit words (internal.proto, DirtyLog). */
uint64_t bh_dirty_bitmap_bytes(uint64_t memfd_size);
/* 64-bit words of KVM_GET_DIRTY_LOG's bitmap for a slot of size bytes. */
uint64_t bh_dirty_slot_words(uint64_t size);

/*
 * Maps the bitmap in fd (borrowed) shared, for a guest-RAM memfd of
 * memfd_size: *map and *bytes. The sandbox has no fstat or pread, so the
 * size is checked by populating the mapping's last page for writing, which
 * the kernel refuses (EFAULT: it would be SIGBUS) where the file ends
 * before that page. (A file that ends inside the last page passes: the
 * check is as fine as SIGBUS is, a page.) 0, -EINVAL (the memfd is too
 * small), -EOPNOTSUPP (a kernel
 * without MADV_POPULATE_WRITE, before Linux 5.14, cannot tell) or the
 * mapping's -errno.
 */
int bh_dirty_map(int fd, uint64_t memfd_size, uint64_t **map, uint64_t *bytes);
void bh_dirty_unmap(uint64_t *map, uint64_t bytes);

/*
 * ORs KVM's bitmap of one slot (src: npages bits, the slot's page i in bit
 * i % 64 of src[i / 64]) into the shared bitmap dst (dst_words words) at
 * page first_page, the slot's memfd offset / BH_DIRTY_PAGE, which need not
 * be a multiple of 64: each source word then spans two words of dst. Bits
 * of src past npages are ignored, and so are pages past dst's end. Each
 * word of dst is changed with an atomic OR (release), never a plain store:
 * the controller takes words with an atomic exchange meanwhile. Returns
 * the number of pages set in src.
 */
uint64_t bh_dirty_fold(uint64_t *dst, uint64_t dst_words, const uint64_t *src,
		       uint64_t npages, uint64_t first_page);

/*
 * Checks a request before anything is done: RUNNER_DIRTY_LOG with enable
 * and nfds fds, or (sync) RUNNER_DIRTY_SYNC; started: RUNNER_START came;
 * logging: the log is on. 0; -EPROTO for a malformed request (an fd count
 * that does not fit: the controller's bug, which ends the runner); or a
 * refusal the runner answers with ERROR and *why: -EAGAIN (not started),
 * -ENODATA (a sync while logging is off).
 */
int bh_dirty_check_log(bool enable, unsigned int nfds, bool started,
		       const char **why);
int bh_dirty_check_sync(bool started, bool logging, const char **why);

#endif
