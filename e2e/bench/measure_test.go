package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// measurement is one timed command, or the sum of a tool's commands.
type measurement struct {
	wall time.Duration
	// cpu is the user+system time of the work: the process and the
	// children it waited for, or a container's cgroup, or a daemon's
	// processes and its containers' cgroup (command.cpu says which).
	cpu time.Duration
	// maxRSS is the peak resident set of the largest single process of the
	// tree: ru_maxrss, or for a container the highest VmHWM seen among its
	// processes (0 where it means nothing, as for the docker client).
	maxRSS int64
	// treePeak is the peak of the summed RSS of the sampled process tree.
	treePeak int64
}

// add joins two consecutive commands: times add up, memory peaks do not.
func (m measurement) add(o measurement) measurement {
	return measurement{wall: m.wall + o.wall, cpu: m.cpu + o.cpu, maxRSS: max(m.maxRSS, o.maxRSS), treePeak: max(m.treePeak, o.treePeak)}
}

// memorySource says where a command's maxRSS comes from.
type memorySource int

const (
	// clientOnly: the command only drives a daemon; no maxRSS.
	clientOnly memorySource = iota
	// ownRusage: ru_maxrss of the command's own process tree.
	ownRusage
	// sampledHWM: the highest VmHWM among the sampled processes (a
	// container's, which are not the command's children).
	sampledHWM
)

// command is a process to time. roots returns the PIDs whose process trees
// are sampled for tree-MiB; nil samples the command's own tree.
type command struct {
	argv  []string
	env   []string
	dir   string
	roots func(self int) []int
	// memory says where maxRSS comes from.
	memory memorySource
	// cpu, when set, measures the CPU time of work done outside the
	// command's own process tree (a daemon's, a container's): it is called
	// just before the command starts, and what it returns just after the
	// command exits. Unset, the CPU time is the command's rusage.
	cpu func() func() time.Duration
	// showOutput, when set, receives the output of a command that succeeded.
	showOutput func(string)
	// after, when set, runs once the command exited, off the clock: a
	// pod's container is removed there. It returns when the work really
	// ended, if that is known and earlier than the command's own exit (a
	// container's exit, before docker tore it down), else the zero time.
	after func() time.Time
}

// run starts c, samples memory while it runs and returns its measurement.
// A failure returns the command's output, which says why.
func (c command) run(ctx context.Context) (measurement, error) {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env, cmd.Dir = c.env, c.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var cpuEnd func() time.Duration
	if c.cpu != nil {
		cpuEnd = c.cpu()
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measurement{}, fmt.Errorf("starting %s: %w", c.argv[0], err)
	}
	roots := func() []int { return []int{cmd.Process.Pid} }
	if c.roots != nil {
		roots = func() []int { return c.roots(cmd.Process.Pid) }
	}
	s := startSampler(roots)
	err := cmd.Wait()
	wall := time.Since(start)
	peak, hwm := s.stop()
	var cpu time.Duration
	if cpuEnd != nil {
		cpu = cpuEnd()
	}
	if c.after != nil {
		if end := c.after(); !end.IsZero() && end.After(start) && end.Sub(start) < wall {
			wall = end.Sub(start)
		}
	}
	if err != nil {
		return measurement{}, fmt.Errorf("%s: %w\n%s", strings.Join(c.argv, " "), err, tail(out.String(), 60))
	}
	if c.showOutput != nil {
		c.showOutput(out.String())
	}
	m := measurement{wall: wall, cpu: cpu, treePeak: peak}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		if c.memory == ownRusage {
			m.maxRSS = ru.Maxrss * 1024 // KiB on Linux
		}
		if c.cpu == nil {
			m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if c.memory == sampledHWM {
		m.maxRSS = hwm
	}
	return m, nil
}

// sampler records the peak summed RSS of process trees, and the highest
// VmHWM of any process in them, polling /proc.
type sampler struct {
	done      chan struct{}
	wg        sync.WaitGroup
	peak, hwm int64
}

// sampleEvery is short enough to catch a RUN command of a fraction of a
// second, long enough not to steal a core from the build on a small machine.
const sampleEvery = 50 * time.Millisecond

func startSampler(roots func() []int) *sampler {
	s := &sampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			sum, hwm := treeMemory(roots())
			s.peak, s.hwm = max(s.peak, sum), max(s.hwm, hwm)
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() (peak, hwm int64) {
	close(s.done)
	s.wg.Wait()
	return s.peak, s.hwm
}

// treeRSS sums the resident memory of roots and all their descendants.
func treeRSS(roots []int) int64 {
	sum, _ := treeMemory(roots)
	return sum
}

// treeMemory is the summed resident memory of roots and all their
// descendants, and the highest peak resident set (VmHWM) among them.
func treeMemory(roots []int) (sum, hwm int64) {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentPID(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	seen := map[int]bool{}
	var walk func(int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		sum += rss(pid)
		hwm = max(hwm, peakRSS(pid))
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return sum, hwm
}

// peakRSS is VmHWM of /proc/PID/status in bytes: the peak resident set of
// the process so far (0 for a kernel thread or a process gone).
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				kib, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kib * 1024
				}
			}
		}
	}
	return 0
}

// processCPU is the user+system time of pid so far and of the children it
// waited for, from /proc/PID/stat (0 for a process gone).
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	return statCPU(data)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// statCPU parses utime+stime+cutime+cstime (fields 14 to 17) out of a
// /proc/PID/stat line, counting from the last ')' as statPPID does.
func statCPU(stat []byte) time.Duration {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 15 {
		return 0
	}
	var ticks int64
	for _, f := range fields[11:15] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// parentPID reads the PPid field of /proc/PID/stat.
func parentPID(pid int) (int, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	return statPPID(data)
}

// statPPID parses the PPid out of a /proc/PID/stat line. The command name
// before it is in parentheses and may itself hold spaces or parentheses,
// so the fields are counted from the last ')'.
func statPPID(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

var pageSize = int64(os.Getpagesize())

// rss is the resident set of pid in bytes, from /proc/PID/statm; a process
// gone in the meantime counts zero.
func rss(pid int) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "statm"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * pageSize
}

// pidsNamed lists the processes whose command name is one of names.
func pidsNamed(names ...string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		for _, n := range names {
			if strings.TrimSpace(string(comm)) == n {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = append([]string{"…"}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// startFromQuietDisk is the untimed pause before each tool's turn: what
// the tools before it wrote is written back, and the kernel's page,
// dentry and inode caches are dropped, so that no tool pays for another's
// writeback or deletions. The deletions matter on an ext4 without a
// journal (this machine's): until an inode table block is written back
// and evicted, the allocator skips the inodes freed in it in the last
// minutes and scans past each of them (ext4's recently_deleted), and the
// tools delete whole image trees as they finish. Measured on a 20k-file
// build by slipway-host right after a 60k-file tree was removed nearby:
// 7.8 s, and 3.6 s after this pause. Every tool then starts with cold
// caches, as on a fresh CI node; the disk reads about 750 MB/s here.
func startFromQuietDisk() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		return fmt.Errorf("dropping the kernel's caches between turns (the benchmark runs as root): %w", err)
	}
	return nil
}
