//go:build linux && arm

package run

import "golang.org/x/sys/unix"

const sysSyncFileRange = unix.SYS_ARM_SYNC_FILE_RANGE
