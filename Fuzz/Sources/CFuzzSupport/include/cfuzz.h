// Helpers of the fuzz harness written in C so that they run without the coverage
// instrumentation the Swift targets are built with (SwiftPM passes -sanitize=fuzzer to
// swiftc only): they are the harness's own bookkeeping, not code under test.
#ifndef CFUZZ_H
#define CFUZZ_H
#include <stddef.h>
#include <stdint.h>

// CRC-32C (Castagnoli; initial value 0xFFFFFFFF, final complement) of `len` bytes at `p`,
// with the 4 bytes at `zero_at` taken as zero (pass (size_t)-1 for none).
uint32_t cfuzz_crc32c(const void *p, size_t len, size_t zero_at);

// Whether all `len` bytes at `p` equal `value`; returns the index of the first that does
// not, or `len`.
size_t cfuzz_first_not(const void *p, size_t len, uint8_t value);

#endif
