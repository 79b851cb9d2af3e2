/* Where musl's math functions, which both binaries use (build/binary.py, musl_math()),
 * answer differently from glibc's in a way a caller can tell; each is wrapped (-Wl,--wrap=)
 * in both binaries, and tests/test_math.py holds them to glibc's results.
 *
 * acosh(x) is defined for x >= 1 only.  For x <= -2 musl computes log(2x - 1/(x+sqrt(x*x-1))),
 * whose cancellation makes some arguments (-0x1p26 < x <= -2) give a number instead of a NaN,
 * and CPython's math.acosh(-1e7) then returns 17.4 where it must raise ValueError. */
double __real_acosh(double x);

double __wrap_acosh(double x)
{
    if (x < 1)
        return (x - x) / (x - x);   /* NaN, with the invalid exception, as glibc */
    return __real_acosh(x);
}
