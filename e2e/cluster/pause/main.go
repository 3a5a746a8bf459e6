// Command pause is the test cluster's pod sandbox process. No image can be
// pulled from outside, so the cluster builds its own pause image: this binary
// holds the pod's namespaces open, reaps orphans (it is PID 1 of the pod when
// the PID namespace is shared) and exits on SIGINT or SIGTERM, which a PID 1
// without handlers would ignore.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
