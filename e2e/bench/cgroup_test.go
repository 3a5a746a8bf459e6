package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// cgroupParent is a cgroup made fresh for one measured command, which
// `docker run --cgroup-parent` (and the legacy `docker build
// --cgroup-parent`) puts the containers under. A container's own cgroup
// is gone once it exits; its parent keeps the CPU time it used, so the
// container's CPU time can be read after the fact, and its processes are
// those in the parent's subtree while it runs.
//
// It needs dockerd's cgroupfs driver, where the parent is a plain path; with
// the systemd driver (a parent must then be a slice) name is empty and the
// CPU time of containers is not measured.
type cgroupParent struct {
	name string // "/slipway-bench-PID-N", or "" where unsupported
}

var (
	cgroupSeq     atomic.Int64
	cgroupfsOnce  sync.Once
	cgroupfsValid bool
)

// cgroupV2 is whether /sys/fs/cgroup is the unified hierarchy.
func cgroupV2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

func newCgroupParent() cgroupParent {
	cgroupfsOnce.Do(func() {
		out, err := exec.Command("docker", "info", "--format", "{{.CgroupDriver}}").Output()
		cgroupfsValid = err == nil && strings.TrimSpace(string(out)) == "cgroupfs"
	})
	if !cgroupfsValid {
		return cgroupParent{}
	}
	return cgroupParent{name: fmt.Sprintf("/slipway-bench-%d-%d", os.Getpid(), cgroupSeq.Add(1))}
}

// dockerArgs is the flag that puts containers under the parent, if any.
func (c cgroupParent) dockerArgs() []string {
	if c.name == "" {
		return nil
	}
	return []string{"--cgroup-parent", c.name}
}

// dirs are the parent's directories: one in the unified hierarchy, or one
// per cgroup v1 controller (de-duplicated: cpu and cpuacct are often one
// hierarchy under two names).
func (c cgroupParent) dirs() []string {
	if c.name == "" {
		return nil
	}
	if cgroupV2() {
		return []string{filepath.Join("/sys/fs/cgroup", c.name)}
	}
	matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", c.name))
	seen := map[string]bool{}
	var dirs []string
	for _, m := range matches {
		real, err := filepath.EvalSymlinks(m)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		dirs = append(dirs, real)
	}
	return dirs
}

// cpu is the CPU time used under the parent so far.
func (c cgroupParent) cpu() time.Duration {
	if c.name == "" {
		return 0
	}
	if cgroupV2() {
		data, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup", c.name, "cpu.stat"))
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				usec, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return time.Duration(usec) * time.Microsecond
			}
		}
		return 0
	}
	data, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct", c.name, "cpuacct.usage"))
	ns, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return time.Duration(ns)
}

// pids are the processes anywhere under the parent.
func (c cgroupParent) pids() []int {
	if c.name == "" {
		return nil
	}
	top := filepath.Join("/sys/fs/cgroup", c.name)
	if !cgroupV2() {
		top = filepath.Join("/sys/fs/cgroup/memory", c.name)
	}
	var pids []int
	_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// remove deletes the parent, once its containers are gone: cgroups are
// removed with rmdir, deepest first.
func (c cgroupParent) remove() {
	for _, top := range c.dirs() {
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}
}

// daemonCPU measures a daemon-driven build (docker build): the CPU time of
// the daemon's processes named in daemons (dockerd, containerd, the shims)
// over the command, plus that of its RUN containers under parent. The
// daemons serve the whole machine, so a busy neighbour's requests count
// too; processes that exit during the build (a RUN container's shim) are
// missed.
func daemonCPU(parent cgroupParent, daemons ...string) func() func() time.Duration {
	return func() func() time.Duration {
		before := map[int]time.Duration{}
		for _, pid := range pidsNamed(daemons...) {
			before[pid] = processCPU(pid)
		}
		return func() time.Duration {
			var total time.Duration
			for _, pid := range pidsNamed(daemons...) {
				total += processCPU(pid) - before[pid]
			}
			total += parent.cpu()
			parent.remove()
			return total
		}
	}
}
