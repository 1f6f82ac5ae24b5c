#ifndef BLOCKSCOPE_CZSTD_SHIM_H
#define BLOCKSCOPE_CZSTD_SHIM_H
#include <zstd.h>
#endif
