# Sourced by the fuzz scripts: the AddressSanitizer settings of every fuzz run (an
# ASAN_OPTIONS already in the environment wins). detect_leaks=0: Swift's runtime keeps
# metadata caches alive, so leak reports are noise. ASan's quarantine stays at its default
# (256 MiB): a 16 MiB one was measured (docs/FUZZING.md, "Throughput") and gave no gain
# beyond the noise of this shared machine, while it would shorten use-after-free detection.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
