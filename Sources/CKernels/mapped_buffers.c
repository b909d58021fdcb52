// Large tensor buffers mapped on their own, so that one the allocator drops for its memory
// budget can be resized into the request that dropped it with its pages kept (Linux's
// mremap): the kernel faults in and clears every fresh page on its first write, and a
// training step with activation checkpointing asks for far more fresh memory than it holds.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // mremap
#endif
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "CKernels.h"

static const uintptr_t huge_page = (uintptr_t)2 << 20;

static size_t page_rounded(size_t bytes) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (bytes + page - 1) / page * page;
}

// The first 2 MiB boundary in [region, region + length + 2 MiB), with the region's parts
// before it and after `length` bytes from it unmapped.
static void *aligned_within(uint8_t *region, size_t length) {
    uint8_t *start = (uint8_t *)(((uintptr_t)region + huge_page - 1) & ~(huge_page - 1));
    if (start > region) munmap(region, (size_t)(start - region));
    uint8_t *end = region + length + huge_page;
    if (end > start + length) munmap(start + length, (size_t)(end - (start + length)));
    return start;
}

void *duo_map_buffer(size_t bytes) {
    size_t length = page_rounded(bytes);
    void *region = mmap(NULL, length + huge_page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) return NULL;
    void *start = aligned_within(region, length);
#ifdef MADV_HUGEPAGE
    madvise(start, length, MADV_HUGEPAGE);  // whole huge pages fault 512 times less often
#endif
    return start;
}

void duo_unmap_buffer(void *buffer, size_t bytes) { munmap(buffer, page_rounded(bytes)); }

void *duo_resize_buffer(void *buffer, size_t from, size_t to) {
    size_t old_length = page_rounded(from), new_length = page_rounded(to);
    if (new_length <= old_length) {
        if (new_length < old_length)
            munmap((uint8_t *)buffer + new_length, old_length - new_length);
        return buffer;
    }
#ifdef MREMAP_FIXED
    // In place where the pages after it are free.
    void *grown = mremap(buffer, old_length, new_length, 0);
    if (grown != MAP_FAILED) return grown;
    // Moved onto a 2 MiB boundary (kept huge pages stay whole): a reservation there first.
    void *region = mmap(NULL, new_length + huge_page, PROT_NONE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) return NULL;
    void *start = aligned_within(region, new_length);
    void *moved = mremap(buffer, old_length, new_length, MREMAP_MAYMOVE | MREMAP_FIXED, start);
    if (moved == MAP_FAILED) {
        munmap(start, new_length);
        return NULL;
    }
    return moved;
#else
    return NULL;
#endif
}
