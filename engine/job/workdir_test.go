package job

import (
	"bufio"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// holderEnv makes the test binary a build that creates its work tree in
// the directory named by the variable, prints the tree's path and waits
// to be killed.
const holderEnv = "SLIPWAY_JOB_TEST_HOLD_WORK_TREE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holderEnv); dir != "" {
		tree, err := makeWorkTree(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.WriteFile(filepath.Join(tree.dir, "layer.tar"), make([]byte, 1<<20), 0o644)
		os.Stdout.WriteString(tree.dir + "\n")
		// Not select {}: with no other goroutine the runtime ends that as a
		// deadlock, the process exits, and its lock is let go before the
		// test kills it.
		time.Sleep(time.Hour)
		// The lock lives as long as the mark's descriptor: without this,
		// the collector may finalize the unreachable *os.File during the
		// sleep, closing it and letting go of the lock (seen under -race).
		runtime.KeepAlive(tree)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdWorkTree starts a build-like process that makes a work tree in dir
// and returns it, with the tree's path.
func holdWorkTree(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, dir) {
		t.Fatalf("the holder said %q (%v)", line, err)
	}
	return cmd, strings.TrimSpace(line)
}

// TestStaleWorkTreesAreRemoved: the tree of a build killed with kill -9 is
// removed by the next build; the tree of a build still running, and
// slipway-* directories that are not build trees, are left alone.
func TestStaleWorkTreesAreRemoved(t *testing.T) {
	dir := t.TempDir()
	killed, killedTree := holdWorkTree(t, dir)
	_, liveTree := holdWorkTree(t, dir)
	foreign := filepath.Join(dir, "slipway-step-123")
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}

	// SIGKILL, by PID: no cleanup runs in the killed process.
	if err := killed.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed.Wait()
	if _, err := os.Stat(filepath.Join(killedTree, "layer.tar")); err != nil {
		t.Fatalf("the killed build's tree should still be there before the next build: %v", err)
	}

	next, err := makeWorkTree(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer next.Remove()
	if _, err := os.Stat(killedTree); !os.IsNotExist(err) {
		t.Errorf("the killed build's tree %s survived the next build: %v", killedTree, err)
	}
	for _, kept := range []string{liveTree, foreign, next.dir} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s was removed: %v", kept, err)
		}
	}
	next.Remove()
	if _, err := os.Stat(next.dir); !os.IsNotExist(err) {
		t.Errorf("Remove left %s: %v", next.dir, err)
	}
}
