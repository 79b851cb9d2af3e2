/* The C front door of the single binaries (docs/design.md, "The front door").
 *
 * minirunc_door() runs in the binary's main(), before CPython initializes.  It serves the
 * successful common case of `state` and `kill` from the init record Python writes beside
 * state.json and returns the exit code; in every other case it has changed nothing,
 * printed nothing, closed what it opened, and returns DOOR_PYTHON: main() then starts the
 * interpreter, which handles the command as if the door did not exist. */
#ifndef MINIRUNC_DOOR_H
#define MINIRUNC_DOOR_H

#define DOOR_PYTHON (-1)
/* Set to anything but "" or "0" in the environment: always the Python path. */
#define DOOR_OFF_ENV "MINIRUNC_NO_DOOR"

int minirunc_door(int argc, char **argv);

#endif
