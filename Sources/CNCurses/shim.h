#ifndef BLOCKSCOPE_CNCURSES_SHIM_H
#define BLOCKSCOPE_CNCURSES_SHIM_H
#define NCURSES_WIDECHAR 1
#include <locale.h>
#include <sys/ioctl.h>
#include <unistd.h>
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

/* Added for BlockScopeUI: keys, extended colour pairs, styled wide-string output. */
static inline int bs_key_up(void) { return KEY_UP; }
static inline int bs_key_down(void) { return KEY_DOWN; }
static inline int bs_key_left(void) { return KEY_LEFT; }
static inline int bs_key_right(void) { return KEY_RIGHT; }
static inline int bs_key_ppage(void) { return KEY_PPAGE; }
static inline int bs_key_npage(void) { return KEY_NPAGE; }
static inline int bs_key_home(void) { return KEY_HOME; }
static inline int bs_key_end(void) { return KEY_END; }
static inline int bs_key_backspace(void) { return KEY_BACKSPACE; }
static inline int bs_key_enter(void) { return KEY_ENTER; }
static inline int bs_key_btab(void) { return KEY_BTAB; }
static inline int bs_key_f(int n) { return KEY_F(n); }
static inline int bs_key_code_yes(void) { return KEY_CODE_YES; }
static inline mmask_t bs_click_and_wheel_mask(void) { return BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_RELEASED | BUTTON4_PRESSED | BUTTON5_PRESSED; }
/* Wide-character input: returns OK, KEY_CODE_YES or ERR; the key in *out. */
static inline int bs_get_wch(WINDOW *w, unsigned *out) { wint_t c = 0; int r = wget_wch(w, &c); *out = (unsigned)c; return r; }
/* Colour pair with 24-bit capable numbers (ncurses >= 6.1). */
static inline int bs_init_pair(int pair, int fg, int bg) { return init_extended_pair(pair, fg, bg); }
/* Sets attributes and an extended colour pair for following output. */
static inline int bs_set_style(WINDOW *w, unsigned attrs, int pair) { return wattr_set(w, (attr_t)attrs, (short)(pair < 32767 ? pair : 0), &pair); }
/* Asks the terminal for its size and resizes curses when it changed (a missed SIGWINCH,
   or two in quick succession); returns 1 when it resized. */
static inline int bs_sync_size(void) {
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return 0;
    if (ws.ws_row == LINES && ws.ws_col == COLS) return 0;
    resizeterm(ws.ws_row, ws.ws_col);
    return 1;
}
/* The key code curses binds to an escape sequence (KEY_MOUSE for "\033[<" when terminfo's
   kmous asks for SGR 1006 mouse reports), 0 when none, -1 when it is a prefix of others. */
static inline int bs_key_defined(const char *seq) { return key_defined(seq); }
/* Pushes a character back onto curses' input queue (read again before new input). */
static inline int bs_unget_wch(unsigned c) { return unget_wch((wchar_t)c); }
/* Writes n wide characters at (y, x). */
static inline int bs_put_wide(WINDOW *w, int y, int x, const wchar_t *s, int n) { return mvwaddnwstr(w, y, x, s, n); }
#endif
