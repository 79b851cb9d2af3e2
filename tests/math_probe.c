/* tests/test_math.py's probe: evaluates math functions on the arguments it reads.
 * stdin: lines "name a b", a and b the bit patterns of doubles in hex (b: an int for ldexp
 * and scalbn, unused by one-argument functions); stdout: one line per input, the result's
 * bit pattern (frexp: and the exponent; modf: and the integral part).  Built with
 * -fno-builtin, so that every call reaches the library the probe is linked with. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static double from_bits(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
static unsigned long long bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }

typedef double (*one_arg)(double);
typedef double (*two_args)(double, double);
#define ONE(f) {#f, f, 0},
#define TWO(f) {#f, 0, f},
static const struct { const char *name; one_arg one; two_args two; } table[] = {
    ONE(sin) ONE(cos) ONE(tan) ONE(asin) ONE(acos) ONE(atan) ONE(sinh) ONE(cosh) ONE(tanh)
    ONE(asinh) ONE(acosh) ONE(atanh) ONE(exp) ONE(exp2) ONE(expm1) ONE(log) ONE(log2)
    ONE(log10) ONE(log1p) ONE(sqrt) ONE(cbrt) ONE(erf) ONE(erfc) ONE(floor) ONE(ceil)
    ONE(round) ONE(fabs)
    TWO(pow) TWO(fmod) TWO(atan2) TWO(hypot) TWO(nextafter) TWO(copysign)
};

int main(void)
{
    char name[32];
    unsigned long long a, b;
    while (scanf("%31s %llx %llx", name, &a, &b) == 3) {
        double x = from_bits(a), y = from_bits(b), r;
        int e;
        size_t i;
        if (!strcmp(name, "frexp")) {
            r = frexp(x, &e);
            printf("%016llx %d\n", bits(r), e);
        } else if (!strcmp(name, "modf")) {
            double whole;
            r = modf(x, &whole);
            printf("%016llx %016llx\n", bits(r), bits(whole));
        } else if (!strcmp(name, "ldexp")) {
            printf("%016llx\n", bits(ldexp(x, (int)(long long)b)));
        } else if (!strcmp(name, "scalbn")) {
            printf("%016llx\n", bits(scalbn(x, (int)(long long)b)));
        } else {
            for (i = 0; i < sizeof table / sizeof table[0]; i++)
                if (!strcmp(name, table[i].name))
                    break;
            if (i == sizeof table / sizeof table[0]) {
                printf("unknown function %s\n", name);
                return 2;
            }
            r = table[i].one ? table[i].one(x) : table[i].two(x, y);
            printf("%016llx\n", bits(r));
        }
    }
    return 0;
}
