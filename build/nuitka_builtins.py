"""Nuitka user plugin: link extension modules into the executable as built-in modules.

build/binary.py compiles the C extension modules the runtime imports (stdlib ones from
CPython's sources, _cffi_backend with a static libffi, minirunc._native) into one static
archive, and describes it in a JSON file named by $MINIRUNC_BUILTINS:

    {"libdir": "...", "libs": ["mrbuiltins"], "modules": [["_struct", "PyInit__struct"], ...]}

This plugin adds a C file that registers those modules in CPython's inittab before main()
(so `import _struct` is answered by BuiltinImporter from inside the executable, never from a
file) and adds the archive to the link line.  libdir also holds a libm.a that shadows the
shared libm, so the executable needs nothing but libc at run time.
"""

import json
import os

from nuitka.plugins.PluginBase import NuitkaPluginBase


def _trim_standard_library(excluded):
    """Two Nuitka standalone defaults that this build turns off (Nuitka 4.3.3 has no option):

    - every module the interpreter imports at start-up (all of `encodings`, hence _codecs_jp,
      zlib, binascii...) is forced into the build, ignoring --nofollow-import-to.  Extension
      modules in `excluded` are filtered out of that list; the stdlib code importing them
      stays and raises ImportError only if a CJK codec or zlib is asked for (never by minirunc).
    - the whole standard library (ftplib, email, pickle, argparse...) is included as bytecode
      whether imported or not: ~5 MB.  Only what the program imports is kept.
    """
    # Imported here: at the time Nuitka loads this file its node classes cannot load yet.
    import nuitka.importing.Recursion as _recursion
    from nuitka.nodes.ModuleNodes import PythonMainModule

    original_early = _recursion.detectEarlyImports

    def keep(name):
        return str(name) not in excluded and str(name).split(".")[0] not in excluded

    def early_imports():
        return tuple(m for m in original_early() if keep(m))

    _recursion.detectEarlyImports = early_imports
    _recursion.detectStdlibAutoInclusionModules = lambda: ()

    original_set = PythonMainModule.setStandardLibraryModules

    def set_standard_library_modules(self, early_module_names, stdlib_modules_names):
        early = tuple(m for m in early_module_names if keep(m))
        return original_set(self, early_module_names=early, stdlib_modules_names=())

    PythonMainModule.setStandardLibraryModules = set_standard_library_modules


# build/binary.py appends TRAILER_MAGIC and the file's total size (8 bytes, little endian)
# to the finished executable.  Checked before main(): a copy cut short (or grown) stops with
# a message instead of running damaged code.  (A copy cut inside its loaded segments never
# gets this far: the dynamic loader dies on it with SIGBUS/SIGSEGV before any code runs.)
TRAILER_MAGIC = b"\0MINIRUNC-SIZE\0\0"
SIZE_CHECK = r"""
#include <fcntl.h>
#include <locale.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((constructor)) static void minirunc_check_size(void)
{
    static const char magic[16] = "\0MINIRUNC-SIZE\0\0";
    unsigned char tail[24];
    struct stat st;
    unsigned long long expected = 0;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;   /* no /proc: nothing to check against */
    if (fstat(fd, &st) == 0 && st.st_size >= 24 &&
        pread(fd, tail, 24, st.st_size - 24) == 24 && memcmp(tail, magic, 16) == 0) {
        for (int i = 7; i >= 0; i--)
            expected = (expected << 8) | tail[16 + i];
        if (expected == (unsigned long long)st.st_size) {
            close(fd);
            return;
        }
    }
    char msg[256];
    int n = expected
        ? snprintf(msg, sizeof msg, "minirunc: this executable is damaged: %lld bytes, %llu expected;"
                   " copy dist/minirunc again\n", (long long)st.st_size, expected)
        : snprintf(msg, sizeof msg, "minirunc: this executable is damaged: its end (size trailer) is"
                   " missing or altered; copy dist/minirunc again\n");
    if (n > 0)
        (void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    _exit(127);
}

/* Nuitka 4.3.3 converts the executable's directory to wide characters with
 * newlocale(LC_CTYPE_MASK, ""), falling back to C.UTF-8/C.utf8/UTF-8, and abort()s with no
 * message when none exists: LANG=C.UTF-8 in a chroot without /usr/lib/locale is enough.
 * When the environment names a locale this host lacks, the process would run in the C
 * locale anyway: say so in the environment (LC_ALL or LC_CTYPE=C) before Nuitka looks. */
__attribute__((constructor)) static void minirunc_unavailable_locale(void)
{
    locale_t env_locale = newlocale(LC_CTYPE_MASK, "", (locale_t)0);
    if (env_locale != (locale_t)0) {
        freelocale(env_locale);
        return;
    }
    const char *all = getenv("LC_ALL");
    setenv(all != NULL && *all != '\0' ? "LC_ALL" : "LC_CTYPE", "C", 1);
}
"""


class MiniruncBuiltins(NuitkaPluginBase):
    plugin_name = "minirunc-builtins"
    plugin_desc = "Link minirunc's extension modules into the executable (inittab)."

    def __init__(self):
        path = os.environ.get("MINIRUNC_BUILTINS")
        if not path:
            raise RuntimeError("minirunc-builtins: set MINIRUNC_BUILTINS to the JSON written by build/binary.py")
        with open(path) as f:
            self.config = json.load(f)
        _trim_standard_library(frozenset(self.config.get("excluded", ())))

    @classmethod
    def isRelevant(cls):
        return True

    def getExtraCodeFiles(self):
        modules = self.config["modules"]
        decls = "".join("extern PyObject *%s(void);\n" % init for _, init in modules)
        rows = "".join('    {"%s", %s},\n' % (name, init) for name, init in modules)
        code = (
            "/* Generated by build/nuitka_builtins.py: minirunc's built-in extension modules. */\n"
            "#include <Python.h>\n#include <stdio.h>\n#include <stdlib.h>\n\n"
            + decls
            + "\nstatic struct _inittab minirunc_inittab[] = {\n"
            + rows
            + "    {NULL, NULL}\n};\n\n"
            "/* Before main(), hence before Py_Initialize(): the only time the inittab may grow. */\n"
            "__attribute__((constructor)) static void minirunc_register_builtins(void)\n{\n"
            "    if (PyImport_ExtendInittab(minirunc_inittab) != 0) {\n"
            '        fputs("minirunc: cannot register built-in modules\\n", stderr);\n'
            "        abort();\n    }\n}\n\n"
            "/* Linked with -Wl,--wrap=patchInspectModule (see build/binary.py): Nuitka's main()\n"
            " * imports `inspect` (with ast, dis, tokenize: ~10 ms per start) only to teach\n"
            " * inspect.getgeneratorstate/getcoroutinestate and types.coroutine about compiled\n"
            " * generators and coroutines.  minirunc has neither, and never imports inspect. */\n"
            "void __wrap_patchInspectModule(PyThreadState *tstate) { (void)tstate; }\n"
            + SIZE_CHECK
        )
        return {"minirunc_inittab.c": code}

    def decideCompilation(self, module_name):
        """Modules listed under "bytecode" (a name or a package) ship as bytecode, not C."""
        for name in self.config.get("bytecode", ()):
            if module_name == name or str(module_name).startswith(name + "."):
                return "bytecode"
        return None

    def getExtraLinkLibraries(self):
        return list(self.config["libs"])

    def getExtraLinkDirectories(self):
        return [self.config["libdir"]]
