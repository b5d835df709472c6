/* escape.h: strings that came from the sandbox, made safe to print as text.
 *
 * A path, host or name the sandboxed command chose can hold any byte: a
 * newline would let it forge lines of cordon's own output (a fake
 * "</sandbox_violations>" an agent takes as cordon's), ESC and BEL would
 * reach the caller's terminal. text_escape writes them C-style:
 *   \\ for a backslash, \n \r \t, \xHH for every other byte below 0x20,
 *   0x7f, and every byte that is not part of valid UTF-8;
 *   \uXXXX for code points that break lines or reorder text although they
 *   are not ASCII controls: C1 controls U+0080-U+009F (NEL among them),
 *   U+2028, U+2029, and the bidirectional controls U+200E, U+200F,
 *   U+202A-U+202E, U+2066-U+2069.
 * Everything else, including other valid UTF-8, is copied as it is. The
 * result never holds a byte below 0x20 nor 0x7f. */
#ifndef CORDON_ESCAPE_H
#define CORDON_ESCAPE_H

#include <stddef.h>

/* Escape src into dst (cap bytes, cap > 0), always NUL-terminated; an
 * escape or a UTF-8 sequence is never cut in two (the output is truncated
 * before it). Returns the length written. */
size_t text_escape(char *dst, size_t cap, const char *src);

#endif
