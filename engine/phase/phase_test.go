package phase

import (
	"io"
	"strings"
	"testing"
	"time"
)

// slowReader takes a while over every Read, as a download does.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 4)])
}

func TestTimer(t *testing.T) {
	timer, stop := Record()
	defer stop()

	end := Start(Run)
	time.Sleep(20 * time.Millisecond)
	end()
	run := timer.Total(Run)
	if run < 20*time.Millisecond {
		t.Errorf("run = %v, want at least the 20ms slept", run)
	}
	end() // a deferred end after an early one
	if again := timer.Total(Run); again != run {
		t.Errorf("a second end added to the phase: %v, then %v", run, again)
	}

	// Reading inside an unpack is pull time, taken out of the unpack: the
	// two add up to the unpack's span.
	began := time.Now()
	end = Start(Unpack)
	if _, err := io.ReadAll(Reader(slowReader{strings.NewReader("twelve bytes")}, Pull, Unpack)); err != nil {
		t.Fatal(err)
	}
	end()
	span := time.Since(began)
	pull, unpack := timer.Total(Pull), timer.Total(Unpack)
	if pull < 15*time.Millisecond {
		t.Errorf("pull = %v, want the reads' time (at least 3 × 5ms)", pull)
	}
	if unpack < 0 || pull+unpack > span {
		t.Errorf("unpack = %v and pull = %v, want the reads taken out of the unpack's span of %v", unpack, pull, span)
	}

	attrs := timer.Attrs()
	if len(attrs) != int(names) {
		t.Fatalf("Attrs has %d entries, want one per phase (%d)", len(attrs), names)
	}
}

func TestNoTimerIsFree(t *testing.T) {
	if current.Load() != nil {
		t.Fatal("a Timer is installed before the test")
	}
	Start(Compress)() // nothing to add to, nothing to panic on
	r := strings.NewReader("x")
	if got := Reader(r, Pull, Unpack); got != io.Reader(r) {
		t.Errorf("Reader wrapped %T with no Timer installed", got)
	}
}

func TestStopUninstallsOnlyItsOwn(t *testing.T) {
	first, stopFirst := Record()
	second, stopSecond := Record()
	stopFirst() // a later Record replaced it: nothing to uninstall
	if current.Load() != second {
		t.Fatal("stopping a replaced Timer uninstalled the current one")
	}
	stopSecond()
	if current.Load() != nil {
		t.Fatal("stop left its Timer installed")
	}
	_ = first
}
