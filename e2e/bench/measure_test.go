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
	// maxRSS is ru_maxrss in bytes: the largest single process of the tree
	// (0 where it means nothing, as for the docker client).
	maxRSS int64
	// treePeak is the peak of the summed RSS of the sampled process tree.
	treePeak int64
}

// add joins two consecutive commands: times add up, memory peaks do not.
func (m measurement) add(o measurement) measurement {
	return measurement{wall: m.wall + o.wall, maxRSS: max(m.maxRSS, o.maxRSS), treePeak: max(m.treePeak, o.treePeak)}
}

// command is a process to time. roots returns the PIDs whose process trees
// are sampled for tree-MiB; nil samples the command's own tree.
type command struct {
	argv  []string
	env   []string
	dir   string
	roots func(self int) []int
	// useMaxRSS is false when the command is only a client of the process
	// that does the work (docker), so its ru_maxrss is not reported.
	useMaxRSS bool
	// showOutput, when set, receives the output of a command that succeeded.
	showOutput func(string)
}

// run starts c, samples memory while it runs and returns its measurement.
// A failure returns the command's output, which says why.
func (c command) run(ctx context.Context) (measurement, error) {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env, cmd.Dir = c.env, c.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
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
	peak := s.stop()
	if err != nil {
		return measurement{}, fmt.Errorf("%s: %w\n%s", strings.Join(c.argv, " "), err, tail(out.String(), 60))
	}
	if c.showOutput != nil {
		c.showOutput(out.String())
	}
	m := measurement{wall: wall, treePeak: peak}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && c.useMaxRSS {
		m.maxRSS = ru.Maxrss * 1024 // KiB on Linux
	}
	return m, nil
}

// sampler records the peak summed RSS of process trees, polling /proc.
type sampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak int64
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
			s.peak = max(s.peak, treeRSS(roots()))
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() int64 {
	close(s.done)
	s.wg.Wait()
	return s.peak
}

// treeRSS sums the resident memory of roots and all their descendants.
func treeRSS(roots []int) int64 {
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
	var total int64
	var walk func(int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		total += rss(pid)
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return total
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
