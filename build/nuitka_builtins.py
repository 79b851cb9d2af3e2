"""Nuitka user plugin: link extension modules into the executable as built-in modules.

build/binary.py builds the interpreter with the stdlib C modules the runtime imports inside
its libpython3.11.a (but not in its inittab), compiles _cffi_backend (with a static libffi)
and minirunc._native into one static archive, and describes them in a JSON file named by
$MINIRUNC_BUILTINS:

    {"libdir": "...", "libs": ["mrbuiltins", ...], "modules": [["_struct", "PyInit__struct"], ...]}

This plugin adds a C file that registers those modules in CPython's inittab before Nuitka's
main() runs (so `import _struct` is answered by BuiltinImporter from inside the executable,
never from a file) and adds the archive to the link line.
"""

import json
import os
import re
import struct

from nuitka.plugins.PluginBase import NuitkaPluginBase


def _trim_standard_library(excluded):
    """Two Nuitka standalone defaults that this build turns off (Nuitka 4.3.3 has no option):

    - every module the interpreter imports at start-up (all of `encodings`, hence _codecs_jp,
      zlib, binascii...) is forced into the build, ignoring --nofollow-import-to.  Extension
      modules in `excluded` are filtered out of that list (the built-in ones are answered
      from the inittab); the stdlib code importing them stays and raises ImportError only if
      a CJK codec is asked for (never by minirunc).
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


# (The check of a damaged copy runs before the dynamic loader, hence not here: see
# build/exe_guard.c.)
LOCALE_CHECK = r"""
#include <locale.h>
#include <stdlib.h>

/* Nuitka 4.3.3 converts the executable's directory to wide characters with
 * newlocale(LC_CTYPE_MASK, ""), falling back to C.UTF-8/C.utf8/UTF-8, and abort()s with no
 * message when none exists: LANG=C.UTF-8 in a chroot without /usr/lib/locale is enough.
 * When the environment names a locale this host lacks, the process would run in the C
 * locale anyway: say so in the environment (LC_ALL or LC_CTYPE=C) before Nuitka looks. */
static void minirunc_unavailable_locale(void)
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


# Linked with -Wl,--wrap=Py_InitializeFromConfig and -Wl,--wrap=Py_PreInitialize
# (build/binary.py).  Nuitka's standalone main() turns off CPython's frozen standard library
# (config.use_frozen_modules = 0) and ships its own bytecode of every module instead;
# build/binary.py leaves the ones CPython 3.11 deep-freezes (os, posixpath, stat,
# _collections_abc...: FROZEN_STDLIB) out of Nuitka's table, so that they come, already
# unmarshalled and interned, from libpython itself.
# And the interpreter inside minirunc is not the user's Python: it ignores the PYTHON*
# environment (as `python -E`), which would otherwise reach it from any shell profile:
# PYTHONDEVMODE=1 or PYTHONMALLOC=debug crashed every command (SIGSEGV), a bad
# PYTHONIOENCODING stopped it with a fatal error, PYTHONWARNINGS=error or PYTHONPATH changed
# what it does.
FROZEN_STDLIB_ON = r"""
PyStatus __real_Py_PreInitialize(const PyPreConfig *config);

PyStatus __wrap_Py_PreInitialize(const PyPreConfig *config)
{
    ((PyPreConfig *)config)->use_environment = 0;   /* Nuitka's own PyPreConfig */
    return __real_Py_PreInitialize(config);
}

PyStatus __real_Py_InitializeFromConfig(const PyConfig *config);

PyStatus __wrap_Py_InitializeFromConfig(const PyConfig *config)
{
    ((PyConfig *)config)->use_frozen_modules = 1;   /* Nuitka's own PyConfig, not shared */
    ((PyConfig *)config)->use_environment = 0;
    return __real_Py_InitializeFromConfig(config);
}
"""


# Linked with -Wl,--wrap=setlocale (build/binary.py).  Nuitka's main() decodes argv between
# setlocale(LC_ALL, "") and a setlocale(LC_ALL, <the previous one, "C">): with LANG set, glibc
# then loads all twelve categories of that locale (a dozen opens and mmaps, ~0.4 ms per
# start) when the decoding reads LC_CTYPE alone.  So a request for every category from the
# environment loads LC_CTYPE only; minirunc never asks for one itself (no `locale` module),
# and CPython's own start sets LC_CTYPE alone.
SETLOCALE_CTYPE_ONLY = r"""
char *__real_setlocale(int category, const char *locale);

char *__wrap_setlocale(int category, const char *locale)
{
    if (category == LC_ALL && locale != NULL && locale[0] == '\0')
        return __real_setlocale(LC_CTYPE, locale);
    return __real_setlocale(category, locale);
}
"""


# Linked with -Wl,--wrap=main (build/binary.py): the C start code calls this instead of
# Nuitka's main().  native/door.c serves the common `state`, `start`, `kill`, `delete` and
# `list` before the interpreter exists, or returns -1 having done nothing (docs/design.md,
# "The front door").  What only the interpreter needs (its inittab, a locale it can load) is
# done after the door declined, not in constructors: a door command then touches none of
# libpython's pages (docs/binary.md, "Start-up of the gnu binary").
FRONT_DOOR = r"""
int minirunc_door(int argc, char **argv);
int __real_main(int argc, char **argv);

int __wrap_main(int argc, char **argv)
{
    int code = minirunc_door(argc, argv);
    if (code >= 0)
        return code;
    minirunc_unavailable_locale();
    minirunc_register_builtins();
    return __real_main(argc, argv);
}
"""


# Nuitka's constants blob starts with one entry, ".bytecode", holding the bytecode of every
# module shipped as bytecode (182 of them, 2.1 MB, in module-name order), and Nuitka's loader
# finds where each module's bytecode begins by walking them all at every start
# (loadConstantsBlob(".bytecode")): it reads the header of every module, so its page faults
# map nearly all of the 2.1 MB (64 KB fault-around windows), whatever the command imports.
# The offsets are known once the blob is composed (onDataComposerResult); linked with
# -Wl,--wrap=loadConstantsBlob (build/binary.py), the table below answers that call, and the
# bytecode of a module is read only when it is imported.
#
# The same hook lays the modules a `run` imports (build/binary.py RUN_PATH_MODULES) out
# first, one after the other: in name order they were spread over 1.1 MB of 64 KB windows for
# 0.5 MB of bytecode.  A module's index (its slot in Nuitka's table) does not change, only
# where its bytes lie, so the walk of Nuitka's own loader would no longer find them: a blob
# that is not the one the table was made from stops the binary instead of being walked.
# Nuitka's constants_blob_spec.h: NUITKA_CONSTANT_BLOB_TAG_BLOB_DATA and _END
BLOB_TAG_BLOB_DATA, BLOB_TAG_END = 0x58, 0x2E
BYTECODE_NAME = b".bytecode\0"


def bytecode_items(blob):
    """(size, [(start, data, end) of each module's item]) of the blob's leading ".bytecode"
    entry: an item is its tag at `start`, its length (7 bits a byte), its bytecode from
    `data` to `end`."""
    if not blob.startswith(BYTECODE_NAME):
        raise RuntimeError("minirunc-builtins: the constants blob does not start with .bytecode")
    size, count = struct.unpack_from("<IH", blob, len(BYTECODE_NAME))
    at, end, items = len(BYTECODE_NAME) + 6, len(BYTECODE_NAME) + 4 + size, []
    for _ in range(count):
        start = at
        if blob[at] != BLOB_TAG_BLOB_DATA:
            raise RuntimeError("minirunc-builtins: item %d of .bytecode is not blob data" % len(items))
        at += 1
        length, factor = 0, 1
        while True:
            value = blob[at]
            at += 1
            length += (value & 127) * factor
            if value < 128:
                break
            factor <<= 7
        items.append((start, at, at + length))
        at += length
    if at + 1 != end or blob[at] != BLOB_TAG_END:
        raise RuntimeError("minirunc-builtins: .bytecode is %d bytes, its items %d" % (size, at - len(BYTECODE_NAME) - 4))
    return size, items


# One entry of Nuitka's __loader.c table for a module shipped as bytecode: its name, ... its
# index in the .bytecode entry, its size.
LOADER_BYTECODE_ENTRY = re.compile(r'^\s*"([\w.]+)", [^\n]*?, (\d+), (\d+), NUITKA_BYTECODE_FLAG', re.M)


def bytecode_modules(loader_source, items):
    """{module name: index} from Nuitka's __loader.c, or None unless it names each item of
    the blob once with the item's very size (then nothing may be moved)."""
    found = {}
    for name, index, size in LOADER_BYTECODE_ENTRY.findall(loader_source):
        index, size = int(index), int(size)
        if index >= len(items) or index in found.values() or name in found:
            return None
        start, data, end = items[index]
        if end - data != size:
            return None
        found[name] = index
    return found if len(found) == len(items) else None


def lay_out_bytecode(blob, items, first):
    """The blob with the items of indices `first` (in that order) ahead of all the others
    (in index order), and where each index's bytecode now begins."""
    first = list(dict.fromkeys(first))
    rest = set(range(len(items))) - set(first)
    order = first + sorted(rest)
    head = len(BYTECODE_NAME) + 6
    body, offsets, at = [], [0] * len(items), head
    for i in order:
        start, data, end = items[i]
        body.append(blob[start:end])
        offsets[i] = at + (data - start)
        at += end - start
    return blob[:head] + b"".join(body) + blob[at:], offsets


def bytecode_index_source(size, offsets, moved):
    """The C of __wrap_loadConstantsBlob: the table, and what a blob it does not fit gets
    (`moved`: the items are not where Nuitka's walk would look, so the binary stops)."""
    rows = "".join("    %d,\n" % o for o in offsets)
    mismatch = ('        fputs("minirunc: the bytecode table does not fit the constants blob "\n'
                '              "(a broken build)\\n", stderr);\n'
                "        abort();\n" if moved else "")
    return (
        "/* Generated by build/nuitka_builtins.py (bytecode_items): where each module's bytecode\n"
        " * begins in Nuitka's constants blob, so that the loader need not walk them all. */\n"
        "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n"
        "struct _ts;\n"
        "extern const unsigned char *getconstant_binData(void);\n"
        "void __real_loadConstantsBlob(struct _ts *tstate, void *output, char const *name);\n\n"
        "/* 1 once the table below answered: the deep-frozen modules' offsets are then true. */\n"
        "int minirunc_bytecode_indexed;\n\n"
        "static const uint32_t minirunc_bytecode_size = %d;\n"
        "static const uint32_t minirunc_bytecode_offsets[%d] = {\n%s};\n\n"
        "void __wrap_loadConstantsBlob(struct _ts *tstate, void *output, char const *name)\n{\n"
        "    if (strcmp(name, \".bytecode\") == 0) {\n"
        "        const unsigned char *bin = getconstant_binData();\n"
        "        uint32_t size;\n        uint16_t count;\n"
        "        memcpy(&size, bin + 10, sizeof size);\n"
        "        memcpy(&count, bin + 14, sizeof count);\n"
        "        if (memcmp(bin, \".bytecode\", 10) == 0 && size == minirunc_bytecode_size &&\n"
        "            count == %d && bin[16] == 0x%02x) {\n"
        "            const unsigned char **out = output;\n"
        "            for (unsigned i = 0; i < %d; i++)\n"
        "                out[i] = bin + minirunc_bytecode_offsets[i];\n"
        "            minirunc_bytecode_indexed = 1;\n"
        "            return;\n        }\n%s    }\n"
        "    __real_loadConstantsBlob(tstate, output, name);\n}\n"
        % (size, len(offsets), rows, len(offsets), BLOB_TAG_BLOB_DATA, len(offsets), mismatch))


# Linked with -Wl,--wrap=PyMarshal_ReadObjectFromString (build/binary.py): the modules a
# `run` imports (RUN_PATH_MODULES) are deep-frozen the way CPython freezes its own stdlib
# (its Tools/scripts/deepfreeze.py, from the tree the interpreter was built from): their code
# objects are static data in the binary, made at build time from the very bytes of their
# item in the blob.  When Nuitka's loader asks marshal for exactly such an item, the static
# code object is handed back instead (its strings interned the first time), so an import no
# longer parses, allocates and builds ~0.5 MB of code objects at every start.  Any other
# call, and every call when the index table did not fit, goes to marshal.
DEEPFREEZE_ENTRY = r"""
struct minirunc_frozen {
    uint32_t offset, size;       /* the item's bytecode in the constants blob */
    PyObject *code;
    int (*intern)(void);         /* interns its strings: once, when first imported */
    int ready;
};
"""
DEEPFREEZE_WRAP = r"""
extern int minirunc_bytecode_indexed;
extern const unsigned char *getconstant_binData(void);
PyObject *__real_PyMarshal_ReadObjectFromString(const char *data, Py_ssize_t size);

PyObject *__wrap_PyMarshal_ReadObjectFromString(const char *data, Py_ssize_t size)
{
    const unsigned char *bin = getconstant_binData(), *at = (const unsigned char *)data;
    if (minirunc_bytecode_indexed && at > bin && at - bin < (Py_ssize_t)UINT32_MAX) {
        uint32_t offset = (uint32_t)(at - bin);
        for (size_t i = 0; i < sizeof minirunc_frozen / sizeof minirunc_frozen[0]; i++) {
            struct minirunc_frozen *f = &minirunc_frozen[i];
            if (f->offset != offset || f->size != size)
                continue;
            if (!f->ready) {
                if (f->intern() < 0)
                    return NULL;
                f->ready = 1;
            }
            Py_INCREF(f->code);
            return f->code;
        }
    }
    return __real_PyMarshal_ReadObjectFromString(data, size);
}
"""


def deepfreeze_source(tools_dir, frozen):
    """The C of the deep-frozen modules and of __wrap_PyMarshal_ReadObjectFromString.
    `frozen`: [(module name, offset of its bytecode in the blob, that bytecode)]."""
    import io
    import sys
    if tools_dir not in sys.path:
        sys.path.insert(0, tools_dir)
    import deepfreeze   # CPython's, with its umarshal: it reads 3.11's marshal format itself
    import umarshal
    out = io.StringIO()
    out.write("/* Generated by build/nuitka_builtins.py (deepfreeze_source) with CPython's\n"
              " * Tools/scripts/deepfreeze.py: the run path's modules as static code objects. */\n"
              "#define Py_BUILD_CORE 1\n#include <stdint.h>\n")
    printer = deepfreeze.Printer(out)
    rows = []
    for i, (name, offset, data) in enumerate(frozen):
        interns = len(printer.interns)
        toplevel = printer.generate("minirunc_frozen_%d" % i, umarshal.loads(data))
        printer.write("/* %s */" % name)
        with printer.block("static int minirunc_frozen_%d_intern(void)" % i):
            for line in printer.patchups:   # the wstr of non-Latin-1 strings
                printer.write(line)
            for call in printer.interns[interns:]:
                printer.write("if (%s < 0) return -1;" % call)
            printer.write("return 0;")
        printer.patchups.clear()
        rows.append("    {%d, %d, (PyObject *)%s, minirunc_frozen_%d_intern, 0},\n"
                    % (offset, len(data), toplevel, i))
    return (out.getvalue() + DEEPFREEZE_ENTRY
            + "\nstatic struct minirunc_frozen minirunc_frozen[] = {\n" + "".join(rows) + "};\n"
            + DEEPFREEZE_WRAP)


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
            "/* Called by __wrap_main() before Nuitka's main(), hence before Py_Initialize(): the\n"
            " * only time the inittab may grow. */\n"
            "static void minirunc_register_builtins(void)\n{\n"
            "    if (PyImport_ExtendInittab(minirunc_inittab) != 0) {\n"
            '        fputs("minirunc: cannot register built-in modules\\n", stderr);\n'
            "        abort();\n    }\n}\n\n"
            "/* Linked with -Wl,--wrap=patchInspectModule (see build/binary.py): Nuitka's main()\n"
            " * imports `inspect` (with ast, dis, tokenize: ~10 ms per start) only to teach\n"
            " * inspect.getgeneratorstate/getcoroutinestate and types.coroutine about compiled\n"
            " * generators and coroutines.  minirunc has neither, and never imports inspect. */\n"
            "void __wrap_patchInspectModule(PyThreadState *tstate) { (void)tstate; }\n"
            + LOCALE_CHECK
            + SETLOCALE_CTYPE_ONLY
            + FRONT_DOOR
            + FROZEN_STDLIB_ON
        )
        return {"minirunc_inittab.c": code}

    def onDataComposerResult(self, blob_filenames):
        """Lays the run path's modules out first in the blob (lay_out_bytecode) and writes the
        bytecode index (bytecode_index_source) and the deep-frozen modules (deepfreeze_source)
        beside the plugin's other C file; scons, which runs next, embeds the blob and compiles
        every C file it finds there."""
        (blob_filename,) = blob_filenames
        with open(blob_filename, "rb") as f:
            blob = f.read()
        size, items = bytecode_items(blob)
        source_dir = os.path.dirname(os.path.dirname(os.path.abspath(blob_filename)))
        with open(os.path.join(source_dir, "__loader.c")) as f:
            modules = bytecode_modules(f.read(), items)
        if modules is None:
            # another Nuitka (build/requirements.txt pins it), or a blob laid out already
            raise RuntimeError("minirunc-builtins: __loader.c's bytecode modules do not match "
                               "the .bytecode entry of %s" % blob_filename)
        first = [modules[m] for m in self.config.get("bytecode_first", ()) if m in modules]
        laid_out, offsets = lay_out_bytecode(blob, items, first)
        moved = laid_out != blob
        if moved:
            with open(blob_filename, "wb") as f:
                f.write(laid_out)
        index = bytecode_index_source(size, offsets, moved)
        frozen = []
        for name in self.config.get("deepfreeze", ()):
            if name in modules:
                _, data, end = items[modules[name]]
                frozen.append((name, offsets[modules[name]], blob[data:end]))
        deep = deepfreeze_source(self.config["deepfreeze_tools"], frozen)
        # Nuitka writes the plugins' C files (and makes this directory) only after this hook.
        os.makedirs(os.path.join(source_dir, "plugins"), exist_ok=True)
        for name, content in (("bytecode_index", index), ("deepfreeze", deep)):
            path = os.path.join(source_dir, "plugins", "plugin.minirunc-builtins.%s.c" % name)
            if not os.path.exists(path) or open(path).read() != content:
                with open(path, "w") as f:
                    f.write(content)

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
