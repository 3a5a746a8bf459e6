package bench

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestStatPPID(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       int
		ok         bool
	}{
		{"plain", "1234 (dockerd) S 1 1234 1234 0 -1", 1, true},
		{"spaces and parentheses in the name", "99 (a (b) c) R 42 99 99 0", 42, true},
		{"no closing parenthesis", "99 (broken R 42", 0, false},
		{"truncated", "99 (x) R", 0, false},
		{"not a number", "99 (x) R pid", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := statPPID([]byte(tc.stat))
			if got != tc.want || ok != tc.ok {
				t.Errorf("statPPID(%q) = %d, %t; want %d, %t", tc.stat, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestTreeRSSCountsDescendants checks that a process tree's RSS includes
// its grandchildren, which is what makes docker's figure cover the RUN
// containers under containerd.
func TestTreeRSSCountsDescendants(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for {
		own, tree := rss(pid), treeRSS([]int{pid})
		// Each sleep holds some resident pages of its own.
		if own > 0 && tree > own {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree RSS %d never exceeded the shell's own %d: the sleeps were not counted", tree, own)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandRun(t *testing.T) {
	const buffer = 64 << 20
	t.Run("peak memory of a child", func(t *testing.T) {
		// dd holds a 64 MiB buffer for the whole copy, long enough for
		// the sampler to see it as well as ru_maxrss.
		m, err := command{
			argv:   []string{"sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=40 2>/dev/null"},
			env:    os.Environ(),
			memory: ownRusage,
		}.run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.maxRSS < buffer {
			t.Errorf("maxRSS = %d, want at least dd's buffer of %d", m.maxRSS, buffer)
		}
		if m.treePeak < buffer {
			t.Errorf("treePeak = %d, want at least dd's buffer of %d", m.treePeak, buffer)
		}
		if m.wall <= 0 {
			t.Errorf("wall = %v", m.wall)
		}
	})
	t.Run("client only", func(t *testing.T) {
		m, err := command{argv: []string{"true"}}.run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.maxRSS != 0 {
			t.Errorf("maxRSS = %d for a command whose own memory is not the measure", m.maxRSS)
		}
	})
	t.Run("failure shows the output", func(t *testing.T) {
		_, err := command{argv: []string{"sh", "-c", "echo no space left >&2; exit 3"}}.run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("err = %v, want the exit status and the command's output", err)
		}
	})
}

func TestAddKeepsPeaks(t *testing.T) {
	a := measurement{wall: time.Second, maxRSS: 10, treePeak: 50}
	b := measurement{wall: 2 * time.Second, maxRSS: 30, treePeak: 20}
	got := a.add(b)
	want := measurement{wall: 3 * time.Second, maxRSS: 30, treePeak: 50}
	if got != want {
		t.Errorf("add = %+v, want %+v", got, want)
	}
}

func TestStatCPU(t *testing.T) {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime ...
	stat := "42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 0 0 150 50 20 30 20 0 1"
	if got, want := statCPU([]byte(stat)), 2500*time.Millisecond; got != want {
		t.Errorf("statCPU = %v, want %v (250 ticks at 100 Hz)", got, want)
	}
	if got := statCPU([]byte("42 (x) S 1 42")); got != 0 {
		t.Errorf("statCPU of a truncated line = %v, want 0", got)
	}
}

func TestCommandCPU(t *testing.T) {
	// A busy loop of the shell's own: its CPU time is the command's.
	m, err := command{argv: []string{"sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"}, env: os.Environ()}.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.cpu <= 0 || m.cpu > 4*m.wall {
		t.Errorf("cpu = %v for a busy loop of wall time %v", m.cpu, m.wall)
	}
	if own := processCPU(os.Getpid()); own <= 0 {
		t.Errorf("processCPU of this test = %v", own)
	}
	if hwm := peakRSS(os.Getpid()); hwm <= 0 {
		t.Errorf("peakRSS of this test = %d", hwm)
	}
}

func TestParsePhases(t *testing.T) {
	out := `{"time":"…","level":"INFO","msg":"Pushed 127.0.0.1:5000/app@sha256:…"}
not JSON: Seconds per phase in a RUN's own output
{"time":"…","level":"DEBUG","msg":"Seconds per phase (overlapping phases count in full)","pull":1.25,"unpack":0.5,"copy":0.25,"run":3,"snapshot":0.125,"compress":2,"push":0.75}
`
	got := parsePhases(out)
	want := map[string]float64{"pull": 1.25, "unpack": 0.5, "copy": 0.25, "run": 3, "snapshot": 0.125, "compress": 2, "push": 0.75}
	if len(got) != len(want) {
		t.Fatalf("parsePhases = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got := parsePhases("kaniko says: INFO[0001] Pushed image\n"); got != nil {
		t.Errorf("parsePhases of another tool's output = %v, want nil", got)
	}
}

func TestFastestKeepsTheQuickerRunAndTheHigherPeaks(t *testing.T) {
	slow := result{total: measurement{wall: 4 * time.Second, cpu: 3 * time.Second, maxRSS: 30, treePeak: 5}, phases: map[string]float64{"run": 3}}
	quick := result{total: measurement{wall: 2 * time.Second, cpu: time.Second, maxRSS: 10, treePeak: 50}, phases: map[string]float64{"run": 1}}
	for _, order := range [][2]result{{slow, quick}, {quick, slow}} {
		got := fastest(fastest(result{}, order[0]), order[1])
		if got.total.wall != 2*time.Second || got.total.cpu != time.Second || got.phases["run"] != 1 {
			t.Errorf("fastest of two = %+v, want the 2s run's wall, CPU and phases", got)
		}
		if got.total.maxRSS != 30 || got.total.treePeak != 50 {
			t.Errorf("fastest of two: peaks %d and %d, want the higher of each (30, 50)", got.total.maxRSS, got.total.treePeak)
		}
	}
}

func TestPrintScalingSlopes(t *testing.T) {
	replaceReported(t, nil, []scalePoint{
		{dimension: "files", unit: "1k files", perUnit: 1000, x: 10000, label: "10k files", tool: "t", res: result{total: measurement{wall: 11 * time.Second, maxRSS: 100 << 20}}},
		{dimension: "files", unit: "1k files", perUnit: 1000, x: 1000, label: "1k files", tool: "t", res: result{total: measurement{wall: 2 * time.Second, maxRSS: 100 << 20}}},
	})
	var out strings.Builder
	printScaling(&out)
	// 9 more seconds over 9k more files: 1 s per 1k files; memory flat.
	if !strings.Contains(out.String(), "1.000") || !strings.Contains(out.String(), "0.0") {
		t.Errorf("scaling table lacks the slope of 1 s per 1k files and flat memory:\n%s", out.String())
	}
	if strings.Index(out.String(), "1k files") > strings.Index(out.String(), "10k files") {
		t.Errorf("points are not in order of size:\n%s", out.String())
	}
}

func TestReportTakesRatiosAgainstPeersAndPullingPeers(t *testing.T) {
	secs := func(s float64) result {
		return result{total: measurement{wall: time.Duration(s * float64(time.Second))}}
	}
	replaceReported(t, []row{
		{section: "cold/x", tool: "slipway-pod", res: secs(4), pulls: true},
		{section: "cold/x", tool: "buildah", res: secs(5)},
		{section: "cold/x", tool: "kaniko-pod", res: secs(8), pulls: true},
		{section: "cold/x", tool: "buildah-pull", res: secs(10), pulls: true},
	}, nil)
	var out strings.Builder
	printReport(&out)
	tests := []struct{ tool, want string }{
		// vs fastest, vs peer (buildah, 5 s), vs pulling (kaniko, 8 s)
		{"slipway-pod", "1.00x 0.80x 0.50x"},
		{"buildah", "1.25x 1.00x 0.62x"},
		{"buildah-pull", "2.50x 2.00x 1.25x"},
	}
	for _, tt := range tests {
		var got string
		for _, l := range strings.Split(out.String(), "\n") {
			// section, tool, wall, CPU, peak, tree, then the three ratios
			if f := strings.Fields(l); len(f) > 8 && f[1] == tt.tool {
				got = strings.Join(f[6:9], " ")
			}
		}
		if got != tt.want {
			t.Errorf("%s: ratios %q, want %q\n%s", tt.tool, got, tt.want, out.String())
		}
	}
}

// replaceReported has the report hold only rows and points until the test
// ends.
func replaceReported(t *testing.T, rows []row, points []scalePoint) {
	reportMu.Lock()
	savedRows, savedPoints := report, scaling
	report, scaling = rows, points
	reportMu.Unlock()
	t.Cleanup(func() {
		reportMu.Lock()
		report, scaling = savedRows, savedPoints
		reportMu.Unlock()
	})
}
