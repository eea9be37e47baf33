/*
 * statedir.h - the pipeline's state directory and its format marker.
 *
 * `state_dir` (a pipeline key) holds what sluice keeps for itself between runs. Its root
 * holds a file named FORMAT whose whole content is one line, "sluice-state <version>\n".
 * A sluice binary reads and writes exactly one version (SL_STATEDIR_VERSION) and refuses
 * a directory marked with any other: a newer layout read by older code could lose or
 * repeat records without a word. See docs/state.md.
 */
#ifndef SLUICE_STATEDIR_H
#define SLUICE_STATEDIR_H

#include "sluice/rc.h"

/* The state format this binary reads and writes. Bump on any incompatible change. */
#define SL_STATEDIR_VERSION 1

/* The marker file's name inside the state directory, and its first word. */
#define SL_STATEDIR_FORMAT_FILE "FORMAT"
#define SL_STATEDIR_MAGIC "sluice-state"

/*
 * Check (and with create != 0, create) the state directory at path.
 *
 * create != 0: the directory and its parents are created as needed (mode 0755), and when
 * FORMAT is absent it is written (temporary file, fsync, rename, fsync of the directory),
 * so a crash leaves either no marker or a complete one. A directory without FORMAT is
 * taken as new: version 1 is the first versioned layout.
 * create == 0: nothing is created or changed.
 *
 * Returns:
 *   SL_OK         the directory exists and is marked with SL_STATEDIR_VERSION
 *   SL_ENOENT     create == 0 and the directory or its FORMAT file does not exist
 *   SL_ESTATE     FORMAT names another version, or is not a sluice marker at all
 *   SL_EIO        path is not a directory, or a system call failed (errno in err)
 *   SL_EINVAL     path is empty or longer than PATH_MAX
 * err->msg names the directory, what was found, and what to do.
 */
sl_rc sl_statedir_open(const char *path, int create, struct sl_error *err);

/*
 * Take the state directory's lock (an exclusive flock(2) on <path>/LOCK, which holds the
 * owner's pid) for the rest of the process's life: the kernel releases it when the process
 * ends, however it ends, so a kill -9 never leaves a stale lock. One process at a time may
 * run or reset a pipeline: two runs over the same state would both resume from the same
 * checkpoints. Call after sl_statedir_open succeeded. Calling it again in the same process
 * is a no-op for the same path.
 *
 * Returns SL_OK; SL_ESTATE when another process holds the lock (err names its pid);
 * SL_EIO when the lock file cannot be opened; SL_ELIMIT when this process already holds
 * the lock of another directory.
 */
sl_rc sl_statedir_lock(const char *path, struct sl_error *err);

#endif
