/* The C front door of the single binaries (docs/design.md, "The front door").
 *
 * minirunc_door() runs in the binary's main(), before CPython initializes.  It serves the
 * successful common case of `state`, `kill`, `start` and `delete` from the door record
 * Python writes beside state.json and returns the exit code; in every other case it has
 * changed nothing, printed nothing, closed what it opened, and returns DOOR_PYTHON: main()
 * then starts the interpreter, which handles the command as if the door did not exist.
 * (Two exceptions: a `start` whose init did not simply exec after the `S` is handed over
 * with what the init answered, see door_start(); a `delete` hands over at the first step
 * that fails, after steps Python's delete makes too, see door_delete().) */
#ifndef MINIRUNC_DOOR_H
#define MINIRUNC_DOOR_H

#define DOOR_PYTHON (-1)
/* Set to anything but "" or "0" in the environment: always the Python path. */
#define DOOR_OFF_ENV "MINIRUNC_NO_DOOR"
/* What a `start` the door began got from the init, for Python to word (container.py). */
#define DOOR_START_ENV "MINIRUNC_DOOR_START"

int minirunc_door(int argc, char **argv);

#endif
