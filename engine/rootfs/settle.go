package rootfs

import (
	"time"

	"golang.org/x/sys/unix"
)

// Whether a later change to a file can keep the ctime just read (git's
// "racily clean" problem) depends on where the file system takes its
// timestamps from. Linux's local file systems stamp a change with the
// kernel's coarse realtime clock (current_time), which moves once per tick
// (1 to 10ms), or, with multigrain timestamps (6.13 on), with a finer time
// that is never earlier. CLOCK_REALTIME_COARSE reads that same clock, so a
// ctime earlier than its reading taken before the stat is settled: any
// change from then on gets a later one. A build waits at most a tick for
// what it just wrote, and often not at all.
//
// Other file systems (FUSE, NFS, virtiofs, 9p) may take the time from
// another machine or process, whose clock can lag this one's: there an
// entry is settled only once racyWindow has passed since its ctime,
// which is more than the coarsest tick (10ms at HZ=100) and a small skew.
const racyWindow = 25 * time.Millisecond

// settleLimit bounds the wait for a ctime ahead of the clock: beyond it
// the clock was set back or the file system keeps time of its own, and the
// entries stay racy instead.
const settleLimit = time.Second

// localTimestamps are the statfs magic numbers of the file systems that
// stamp changes with this kernel's clock: ext2/3/4, XFS, Btrfs, tmpfs and
// overlayfs (which stamps through its upper layer, one of these where a
// container runtime makes it). The magic is 32 bits wide whatever the
// width of Statfs_t.Type, which is signed on some architectures.
var localTimestamps = map[uint32]bool{
	unix.EXT4_SUPER_MAGIC:      true,
	unix.XFS_SUPER_MAGIC:       true,
	unix.BTRFS_SUPER_MAGIC:     true,
	unix.TMPFS_MAGIC:           true,
	unix.OVERLAYFS_SUPER_MAGIC: true,
}

// SettledBefore is the time before which the ctimes of the entries under
// root are settled, read before the entries are: a change made to one of
// them afterwards gets a later ctime. MarkRacy takes it.
func SettledBefore(root string) time.Time {
	var fs unix.Statfs_t
	if err := unix.Statfs(root, &fs); err != nil || !localTimestamps[uint32(fs.Type)] {
		return time.Now().Add(-racyWindow)
	}
	return coarseNow()
}

// coarseNow reads CLOCK_REALTIME_COARSE, the clock that stamps changes on
// local file systems.
func coarseNow() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &ts); err != nil {
		// Not on Linux before 2.6.32; the fine clock is never earlier,
		// so the window keeps the old margin.
		return time.Now().Add(-racyWindow)
	}
	return time.Unix(ts.Unix())
}

// waitSettled sleeps until SettledBefore(root) is past newest, a ctime,
// and returns that reading for MarkRacy. It gives up, reporting false,
// when newest is further ahead than settleLimit.
func waitSettled(root string, newest int64) (since time.Time, settled bool) {
	deadline := time.Now().Add(settleLimit)
	for {
		since = SettledBefore(root)
		ahead := time.Duration(newest - since.UnixNano())
		if ahead < 0 {
			return since, true
		}
		if ahead > settleLimit || time.Now().After(deadline) {
			return since, false
		}
		// The coarse clock moves by ticks: it may pass newest a tick
		// after the fine one does, hence the loop.
		time.Sleep(ahead + time.Millisecond)
	}
}
