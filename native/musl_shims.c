/* What Debian's libseccomp.a needs of a C library beyond musl's (it is compiled against
 * glibc with _FORTIFY_SOURCE): __fprintf_chk, called only by its PFC text export, which
 * the init never uses.  Linked into the init only (native/build_native.py). */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *stream, int flag, const char *format, ...)
{
    va_list ap;
    (void)flag;
    va_start(ap, format);
    int n = vfprintf(stream, format, ap);
    va_end(ap);
    return n;
}
