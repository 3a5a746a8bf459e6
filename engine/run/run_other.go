//go:build !linux

package run

import (
	"fmt"
	"runtime"
)

// MaybeReexec does nothing where the RUN init does not exist.
func MaybeReexec() {}

func newExecutor(mode Mode, _ options) (Executor, error) {
	return nil, fmt.Errorf("run mode %q needs Linux; this is %s", mode, runtime.GOOS)
}
