/**
 * Which C allocator the process runs on, for the `ready` line: an operator who preloads jemalloc
 * (docs/tuning.md) sees that it took. It matters after reconnect storms:
 * OpenSSL's per-handshake allocations are made in the C heap, and glibc's malloc keeps what a storm
 * freed in the middle of its heap for the life of the process, where jemalloc's background thread
 * gives it back within seconds (docs/tuning.md).
 */
import { readFileSync } from 'node:fs'

export type CAllocator = 'jemalloc' | 'libc'

/** `jemalloc` when libjemalloc is mapped into this process (Linux: /proc/self/maps), else `libc`. */
export function cAllocator(): CAllocator {
  try {
    return readFileSync('/proc/self/maps', 'utf8').includes('/libjemalloc') ? 'jemalloc' : 'libc'
  } catch {
    return 'libc'
  }
}
