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
			argv:      []string{"sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=40 2>/dev/null"},
			env:       os.Environ(),
			useMaxRSS: true,
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
