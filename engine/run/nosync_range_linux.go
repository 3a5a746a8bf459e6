//go:build linux && !arm && !ppc && !ppc64 && !ppc64le

package run

import "golang.org/x/sys/unix"

// sysSyncFileRange is sync_file_range, which some architectures name
// differently (nosync_range_*_linux.go).
const sysSyncFileRange = unix.SYS_SYNC_FILE_RANGE
