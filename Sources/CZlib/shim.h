#ifndef BLOCKSCOPE_CZLIB_SHIM_H
#define BLOCKSCOPE_CZLIB_SHIM_H
#include <zlib.h>
/* inflateInit2/deflateInit2 are macros; wrap them. */
static inline int bs_inflate_init_raw(z_stream *s) { return inflateInit2(s, -12); }
static inline int bs_deflate_init_raw(z_stream *s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY);
}
#endif
