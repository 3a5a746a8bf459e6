// Package snapshot finds what a build step changed under a root directory:
// the Snapshotter seam between running a step and writing its layer. A
// Snapshotter (Walk or OverlayFS) starts one Session per step: Prepare
// gives the directory the step runs in, Snapshot what it changed, Commit
// makes that part of the root, Discard drops it.
//
// # The walker
//
// Walker compares the tree with the rootfs.Index that extraction (and every
// earlier snapshot) left behind. It walks the root in parallel, a bounded
// pool of goroutines taking whole directories, and costs one fstatat per
// entry. For each entry:
//
//   - not in the index: Add (and everything beneath a new directory).
//   - a different type than indexed (file↔directory, symlink→directory):
//     Add; the old subtree leaves the index and needs no whiteouts, since
//     the new entry replaces it when the layer is applied.
//   - a directory with a different inode (removed and made again): Opaque
//     plus Add, and everything beneath is Add.
//   - type, mode (special bits included), uid, gid, size (non-directories),
//     mtime, symlink target or device number differ: Add.
//   - all of those equal, and ctime and inode equal too (and the entry is
//     not racy, see below): unchanged. Any write to a file bumps its ctime,
//     and no system call sets ctime back, so an edit that keeps size and
//     mtime (touch -r, os.Chtimes) is caught by the next case.
//   - all of those equal but ctime or inode differ (or the entry is racy):
//     metadata cannot decide.
//     The xattrs are read and compared; then a regular file's content is
//     hashed and compared with the sha256 recorded at extraction. Without a
//     recorded hash the file counts as changed. Only these files are ever
//     read.
//
// File systems with coarse timestamps can give an edit made in the same
// clock tick as the last stat the same ctime (git's "racily clean" files).
// An entry whose ctime is not yet behind the clock that stamps changes
// (rootfs.SettledBefore: the kernel's coarse clock on local file systems,
// 25ms ago elsewhere) is marked racy and re-read once it is
// (rootfs.Index.Settle: at most one short sleep per snapshot, a tick on a
// local file system, only when something was written moments before); an
// entry still racy is judged by its content as above.
//
// Deletions are found without a second walk: removing an entry changes its
// directory's mtime and ctime, so only directories whose metadata changed
// can have lost children. Their children are collected during the walk, and
// one pass over the index emits Delete for each indexed child not seen (the
// top-most path of a removed subtree only).
//
// A regular file with more than one link that changed pulls in every other
// path to the same inode, so the layer keeps them as hardlinks (the overlay
// snapshotter sees the same set, since overlayfs copies both up).
//
// The index is brought up to the tree just seen as the walk goes, each
// path by its own visit, so the next snapshot starts from here; no second
// copy of the changed entries is held.
//
// # The overlay snapshotter
//
// Overlay mounts overlayfs with the extracted root as lowerdir; the step
// runs in the merged directory and its changes land in the upper directory,
// which is all that a snapshot reads: O(changes). A 0/0 character device is
// a whiteout (Delete); a directory with trusted.overlay.opaque=y over a
// lower directory is Opaque. Commit moves the upper directory into the root
// and records it in the index, so the two snapshotters can be mixed.
package snapshot
