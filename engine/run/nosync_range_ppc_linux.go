//go:build linux && (ppc || ppc64 || ppc64le)

package run

import "golang.org/x/sys/unix"

const sysSyncFileRange = unix.SYS_SYNC_FILE_RANGE2
