# Sourced by the fuzz scripts: the AddressSanitizer settings of every fuzz run (an
# ASAN_OPTIONS already in the environment wins).
# - detect_leaks=0: Swift's runtime keeps metadata caches alive, so leak reports are noise.
# - malloc_context_size=0: ASan records no call stack for each allocation and free. Recording
#   them (30 frames by default: an unwind and a stack-depot insert per malloc and per free) was
#   a fifth of the QCOW2 targets' CPU time, which allocate a few hundred times per input
#   (docs/FUZZING.md, "Throughput (2026-12-05)"). Detection is unchanged: heap overflows,
#   uses after free and double frees are still caught and reported with the faulting access's
#   stack; only the report's "allocated by" and "freed by" stacks are empty. Replaying the saved
#   input without these options (docs/FUZZING.md, "Reproduce a crash") prints them in full.
# ASan's quarantine stays at its default (256 MiB): a 16 MiB one was measured and gave no gain
# beyond the noise of this shared machine, while it would shorten use-after-free detection.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:malloc_context_size=0}
