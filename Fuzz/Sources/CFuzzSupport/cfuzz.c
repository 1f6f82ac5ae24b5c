#include "cfuzz.h"

static uint32_t table[256];
static int table_ready;

static void make_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    table_ready = 1;
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *b, size_t n) {
    while (n >= 8) {
        uint64_t v;
        __builtin_memcpy(&v, b, 8);
        crc = (uint32_t)__builtin_ia32_crc32di(crc, v);
        b += 8; n -= 8;
    }
    while (n--) crc = __builtin_ia32_crc32qi(crc, *b++);
    return crc;
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *b, size_t n) {
    if (!table_ready) make_table();
    while (n--) crc = table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return crc;
}

static uint32_t crc_part(uint32_t crc, const uint8_t *b, size_t n) {
    return __builtin_cpu_supports("sse4.2") ? crc_hw(crc, b, n) : crc_sw(crc, b, n);
}

uint32_t cfuzz_crc32c(const void *p, size_t len, size_t zero_at) {
    const uint8_t *b = p;
    uint32_t crc = 0xFFFFFFFFu;
    if (zero_at < len && len - zero_at >= 4) {
        static const uint8_t zeroes[4];
        crc = crc_part(crc, b, zero_at);
        crc = crc_part(crc, zeroes, 4);
        crc = crc_part(crc, b + zero_at + 4, len - zero_at - 4);
    } else {
        crc = crc_part(crc, b, len);
    }
    return ~crc;
}

size_t cfuzz_first_not(const void *p, size_t len, uint8_t value) {
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) if (b[i] != value) return i;
    return len;
}
