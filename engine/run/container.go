package run

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// NotContainerError refuses in-place mode where nothing says that / is a
// throwaway container's: in-place mode empties / before it unpacks a base
// image, so on a workstation or a shell runner it would destroy the
// machine. Nothing has been written when it is returned.
type NotContainerError struct {
	// Looked lists the signs that were looked for and not found.
	Looked []string
}

func (e *NotContainerError) Error() string {
	return "refusing in-place mode (--mode in-place or SLIPWAY_MODE=in-place): it empties / and unpacks the image there, " +
		"and this process does not run inside a container (" + strings.Join(e.Looked, "; ") + "). Nothing was written. " +
		"Build with --mode chroot, which keeps the image's root under --work-dir; or, only where / really is disposable " +
		"(a container this check does not recognise), pass --force"
}

// Host is what the container check reads: files under Root ("/" in real
// use, a fake tree in tests) and the environment through LookupEnv.
type Host struct {
	Root      string
	LookupEnv func(string) (string, bool)
}

// ThisHost is the process's own view: / and its environment.
func ThisHost() Host { return Host{Root: "/", LookupEnv: os.LookupEnv} }

// cgroupRuntimes are words that a container runtime puts into the cgroup
// path of the processes it starts (docker, Kubernetes' kubelet, containerd,
// podman, CRI-O, LXC, GitHub Actions' job containers).
var cgroupRuntimes = []string{"docker", "kubepods", "containerd", "libpod", "crio", "lxc", "actions_job", "buildkit"}

// ContainerSign returns the first sign that the process runs inside a
// container, and whether there is one. The signs are kaniko's and the
// runtimes' own: the marker files docker (/.dockerenv) and podman
// (/run/.containerenv) create, the environment Kubernetes
// (KUBERNETES_SERVICE_HOST) and systemd-style runtimes (container=) give,
// and the view of PID 1: its cgroup naming a runtime, its root being an
// overlay filesystem, or its PID in /proc/1/sched not being 1 (a PID
// namespace, on kernels that show the outer PID there). Without /proc
// nothing of PID 1 can be read, and only the first signs count.
func (h Host) ContainerSign() (string, bool) {
	sign, _ := h.inspect()
	return sign, sign != ""
}

func (h Host) inspect() (sign string, looked []string) {
	for _, marker := range []string{"/.dockerenv", "/run/.containerenv"} {
		if _, err := os.Lstat(h.path(marker)); err == nil {
			return marker + " exists", nil
		}
	}
	looked = append(looked, "no /.dockerenv or /run/.containerenv")
	lookup := h.LookupEnv
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	if v, ok := lookup("KUBERNETES_SERVICE_HOST"); ok && v != "" {
		return "KUBERNETES_SERVICE_HOST is set", nil
	}
	if v, ok := lookup("container"); ok && v != "" {
		return "container=" + v + " is set", nil
	}
	looked = append(looked, "KUBERNETES_SERVICE_HOST and container are unset")

	if data, err := os.ReadFile(h.path("/proc/1/cgroup")); err == nil {
		if rt := cgroupRuntime(data); rt != "" {
			return "PID 1's cgroup names " + rt, nil
		}
		looked = append(looked, "PID 1's cgroup names no container runtime")
	} else {
		looked = append(looked, "/proc/1/cgroup unreadable")
	}
	if data, err := os.ReadFile(h.path("/proc/1/mountinfo")); err == nil {
		if fs := rootFSType(data); fs == "overlay" || strings.HasSuffix(fs, "overlayfs") {
			return "PID 1's / is an " + fs + " filesystem", nil
		} else if fs != "" {
			looked = append(looked, "PID 1's / is "+fs+", not an overlay")
		}
	} else {
		looked = append(looked, "/proc/1/mountinfo unreadable")
	}
	if data, err := os.ReadFile(h.path("/proc/1/sched")); err == nil {
		if pid, ok := schedPID(data); ok && pid != 1 {
			return "PID 1 is PID " + strconv.Itoa(pid) + " outside its namespace", nil
		}
	}
	return "", looked
}

func (h Host) path(p string) string {
	if h.Root == "" || h.Root == "/" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// cgroupRuntime returns the runtime named in a /proc/PID/cgroup, or "".
// Lines are "hierarchy-ID:controllers:path"; on a host PID 1 sits in "/" or
// "/init.scope".
func cgroupRuntime(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		p := strings.ToLower(parts[2])
		for _, rt := range cgroupRuntimes {
			if strings.Contains(p, rt) {
				return rt
			}
		}
	}
	return ""
}

// rootFSType returns the filesystem type of the mount at "/" in a
// mountinfo, the last one when several are stacked, or "".
func rootFSType(data []byte) string {
	fs := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || fields[4] != "/" {
			continue
		}
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				fs = fields[i+1]
				break
			}
		}
	}
	return fs
}

// schedPID reads the PID from the first line of /proc/PID/sched,
// "comm (PID, #threads: N)".
func schedPID(data []byte) (int, bool) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	open := bytes.LastIndexByte(line, '(')
	if open < 0 {
		return 0, false
	}
	num, _, ok := bytes.Cut(line[open+1:], []byte(","))
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(num)))
	return pid, err == nil
}

// CheckContainer allows in-place mode only inside a container, or anywhere
// with force (kaniko's --force). It returns *NotContainerError otherwise.
// It reads and never writes, so a refusal leaves everything as it was.
func (h Host) CheckContainer(force bool) error {
	if force {
		return nil
	}
	sign, looked := h.inspect()
	if sign != "" {
		return nil
	}
	return &NotContainerError{Looked: looked}
}
