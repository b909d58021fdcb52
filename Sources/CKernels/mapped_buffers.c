// Large tensor buffers mapped on their own, in whole 2 MiB huge pages, so that the pages of
// ones the allocator drops for its memory budget can be moved into the requests that
// follow (Linux's mremap) instead of new ones: the kernel faults in and clears every fresh
// page on its first write, and a training step with activation checkpointing asks for far
// more fresh memory than it holds.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // mremap
#endif
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "CKernels.h"

static const size_t huge_page = (size_t)2 << 20;

size_t duo_mapped_length(size_t bytes) { return (bytes + huge_page - 1) / huge_page * huge_page; }

// `length` bytes at a 2 MiB boundary, mapped with `prot`; the slack mapped around it to
// find the boundary is unmapped again.
static uint8_t *map_aligned(size_t length, int prot, int flags) {
    uint8_t *region = mmap(NULL, length + huge_page, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    if (region == MAP_FAILED) return NULL;
    uint8_t *start = (uint8_t *)(((uintptr_t)region + huge_page - 1) & ~(uintptr_t)(huge_page - 1));
    if (start > region) munmap(region, (size_t)(start - region));
    uint8_t *end = region + length + huge_page;
    if (end > start + length) munmap(start + length, (size_t)(end - (start + length)));
    return start;
}

static void advise_huge_pages(void *start, size_t length) {
#ifdef MADV_HUGEPAGE
    madvise(start, length, MADV_HUGEPAGE);  // whole huge pages fault 512 times less often
#else
    (void)start, (void)length;
#endif
}

void *duo_map_buffer(size_t bytes) {
    size_t length = duo_mapped_length(bytes);
    uint8_t *start = map_aligned(length, PROT_READ | PROT_WRITE, 0);
    if (start) advise_huge_pages(start, length);
    return start;
}

void duo_unmap_buffer(void *start, size_t length) { munmap(start, length); }

int duo_can_move_pages(void) {
#ifdef MREMAP_FIXED
    return 1;
#else
    return 0;
#endif
}

void *duo_gather_pages(void *const *pieces, const size_t *lengths, size_t count, size_t bytes) {
    size_t length = duo_mapped_length(bytes), filled = 0, moved = 0;
#ifdef MREMAP_FIXED
    // A reservation of the whole range first, so that the pieces land side by side on a
    // 2 MiB boundary (their huge pages stay whole); each replaces its part of it.
    uint8_t *start = map_aligned(length, PROT_NONE, MAP_NORESERVE);
    for (; start && moved < count && filled + lengths[moved] <= length; moved++) {
        void *at = mremap(pieces[moved], lengths[moved], lengths[moved],
                          MREMAP_MAYMOVE | MREMAP_FIXED, start + filled);
        if (at == MAP_FAILED) break;
        filled += lengths[moved];
    }
    if (start && moved == count) {
        if (filled == length) return start;
        // New pages for the rest.
        void *rest = mmap(start + filled, length - filled, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (rest != MAP_FAILED) {
            advise_huge_pages(rest, length - filled);
            return start;
        }
    }
    if (start) munmap(start, length);  // with the pieces moved so far
#endif
    for (; moved < count; moved++) munmap(pieces[moved], lengths[moved]);
    return NULL;
}
