// Package rootfs extracts image layers into a root directory and keeps the
// Index that snapshots start from; Lower and Sparse stand in for an
// extracted image where a step only needs to see part of it (lower.go).
//
// Extraction treats every layer as untrusted. Each entry's parent directory
// is opened as a file descriptor confined to the root (openat2 with
// RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS where the kernel allows it, else a
// component-by-component openat walk that resolves symlinks against the
// root, never the host), and the entry itself is then created with *at
// system calls relative to that descriptor, never following a symlink in
// its last component. Names and hardlink targets that climb out of the root
// with ".." are refused; absolute names are taken relative to the root, as
// Docker does. A symlink in the layer is written as it is and never followed
// on the host's side: a symlink to /etc leads to <root>/etc.
//
// The Index records, for every path written, the metadata read back with
// lstat after the layer was complete (so ctime and the directories' mtimes
// are final) and, for regular files, the sha256 of the content as it
// streamed past. The snapshot package compares against it.
//
// ADD unpacks its archives with the same extractor, rooted at the
// destination directory (BuildKit's Untar is chrooted there): AsArchive
// reads whiteout names as plain files, WithOwner applies --chown and
// WithoutDevices skips device nodes and fifos.
package rootfs
