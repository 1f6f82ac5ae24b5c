#ifndef BLOCKSCOPE_CNCURSES_SHIM_H
#define BLOCKSCOPE_CNCURSES_SHIM_H
#define NCURSES_WIDECHAR 1
#include <locale.h>
#include <ncursesw/curses.h>

/* Imported C globals are not concurrency-safe in Swift 6: reach them through accessors. */
static inline WINDOW *bs_stdscr(void) { return stdscr; }
static inline int bs_lines(void) { return LINES; }
static inline int bs_cols(void) { return COLS; }
static inline int bs_colors(void) { return COLORS; }
static inline int bs_color_pairs(void) { return COLOR_PAIRS; }
static inline unsigned bs_a_bold(void) { return A_BOLD; }
static inline unsigned bs_a_reverse(void) { return A_REVERSE; }
static inline unsigned bs_a_underline(void) { return A_UNDERLINE; }
static inline unsigned bs_a_dim(void) { return A_DIM; }
static inline unsigned bs_color_pair(int n) { return COLOR_PAIR(n); }
static inline int bs_key_resize(void) { return KEY_RESIZE; }
static inline int bs_key_mouse(void) { return KEY_MOUSE; }
static inline mmask_t bs_all_mouse_events(void) { return ALL_MOUSE_EVENTS | REPORT_MOUSE_POSITION; }
static inline mmask_t bs_button1_clicked(void) { return BUTTON1_CLICKED | BUTTON1_PRESSED; }
static inline mmask_t bs_button4_pressed(void) { return BUTTON4_PRESSED; }
static inline mmask_t bs_button5_pressed(void) { return BUTTON5_PRESSED; }
#endif
