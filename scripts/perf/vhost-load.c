/* A load generator for a guest's block device, built static and run inside the busybox
 * initramfs of scripts/perf/vhost-vs-qsd.sh: io_uring with O_DIRECT at a fixed queue depth.
 *   vhost-load DEVICE randread|randwrite|seqwrite BS QD SECONDS SPAN_BYTES
 * Prints one line: "LOAD <mode> bs=<BS> qd=<QD> ios=<N> secs=<S> iops=<I> mibs=<M>". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: vhost-load DEV randread|randwrite|seqwrite BS QD SECONDS SPAN\n"); return 2; }
    const char *mode = argv[2];
    size_t bs = strtoull(argv[3], 0, 0);
    unsigned qd = atoi(argv[4]);
    double secs = atof(argv[5]);
    unsigned long long span = strtoull(argv[6], 0, 0) / bs * bs;
    int write = strcmp(mode, "randread") != 0, seq = strcmp(mode, "seqwrite") == 0;
    int fd = open(argv[1], (write ? O_RDWR : O_RDONLY) | O_DIRECT);
    if (fd < 0) { perror("open"); return 1; }
    struct io_uring ring;
    if (io_uring_queue_init(qd, &ring, 0) < 0) { fprintf(stderr, "io_uring_queue_init failed\n"); return 1; }
    char *buf;
    if (posix_memalign((void **)&buf, 4096, bs * qd)) return 1;
    memset(buf, 0x5a, bs * qd);
    unsigned long long next = 0, ios = 0, seed = 88172645463325252ULL;
    double t0 = now(), end = t0 + secs;
    unsigned inflight = 0;
    for (unsigned i = 0; i < qd; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        unsigned long long off;
        if (seq) { off = next; next = (next + bs) % span; } else { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; off = seed % (span / bs) * bs; }
        if (write) io_uring_prep_write(sqe, fd, buf + i * bs, bs, off); else io_uring_prep_read(sqe, fd, buf + i * bs, bs, off);
        io_uring_sqe_set_data64(sqe, i);
        inflight++;
    }
    io_uring_submit(&ring);
    while (inflight > 0) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(&ring, &cqe) < 0) { fprintf(stderr, "wait failed\n"); return 1; }
        if (cqe->res != (int)bs) { fprintf(stderr, "I/O failed: %d\n", cqe->res); return 1; }
        unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
        io_uring_cqe_seen(&ring, cqe);
        inflight--;
        ios++;
        if (now() < end) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            unsigned long long off;
            if (seq) { off = next; next = (next + bs) % span; } else { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; off = seed % (span / bs) * bs; }
            if (write) io_uring_prep_write(sqe, fd, buf + i * bs, bs, off); else io_uring_prep_read(sqe, fd, buf + i * bs, bs, off);
            io_uring_sqe_set_data64(sqe, i);
            inflight++;
            io_uring_submit(&ring);
        }
    }
    double el = now() - t0;
    printf("LOAD %s bs=%zu qd=%u ios=%llu secs=%.2f iops=%.0f mibs=%.1f\n", mode, bs, qd, ios, el, ios / el, ios * (double)bs / el / 1048576);
    return 0;
}
