package run

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Views of PID 1 as the kernel shows them.
const (
	hostCgroupV1 = "12:pids:/init.scope\n1:name=systemd:/init.scope\n0::/init.scope\n"
	hostCgroupV2 = "0::/\n"
	dockerCgroup = "0::/system.slice/docker-3f4e1b2c.scope\n"
	kubeCgroupV1 = "11:memory:/kubepods/burstable/pod1b2c/3f4e1b2c\n1:name=systemd:/kubepods/burstable/pod1b2c/3f4e1b2c\n"
	crioCgroup   = "0::/kubepods.slice/kubepods-besteffort.slice/crio-3f4e.scope\n"

	hostMountinfo    = "1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
	overlayMountinfo = "812 700 0:65 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/ABC,upperdir=/var/lib/docker/overlay2/x/diff\n813 812 0:70 / /proc rw - proc proc rw\n"
	// A later mount over / shadows the first.
	stackedMountinfo = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n900 1 0:80 / / rw - overlay overlay rw,lowerdir=/l\n"
	fuseMountinfo    = "1 0 0:50 / / rw - fuse.fuse-overlayfs fuse-overlayfs rw\n"

	hostSched = "systemd (1, #threads: 1)\n-------------------\nse.exec_start : 1.0\n"
	nsSched   = "sh (48213, #threads: 1)\n-------------------\n"
)

func TestContainerSign(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		env   map[string]string
		sign  string // "" means no container
	}{
		{name: "bare host, cgroup v1", files: map[string]string{"proc/1/cgroup": hostCgroupV1, "proc/1/mountinfo": hostMountinfo, "proc/1/sched": hostSched}},
		{name: "bare host, cgroup v2", files: map[string]string{"proc/1/cgroup": hostCgroupV2, "proc/1/mountinfo": hostMountinfo, "proc/1/sched": hostSched}},
		{name: "chroot jail without /proc"},
		{name: "empty environment values", env: map[string]string{"KUBERNETES_SERVICE_HOST": "", "container": ""}},
		{name: "docker marker", files: map[string]string{".dockerenv": ""}, sign: "/.dockerenv"},
		{name: "podman marker", files: map[string]string{"run/.containerenv": "engine=\"podman\"\n"}, sign: "/run/.containerenv"},
		{name: "kubernetes pod", env: map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, sign: "KUBERNETES_SERVICE_HOST"},
		{name: "systemd-nspawn or lxc", env: map[string]string{"container": "lxc"}, sign: "container=lxc"},
		{name: "docker cgroup", files: map[string]string{"proc/1/cgroup": dockerCgroup}, sign: "docker"},
		{name: "kubepods cgroup v1", files: map[string]string{"proc/1/cgroup": kubeCgroupV1}, sign: "kubepods"},
		{name: "cri-o cgroup", files: map[string]string{"proc/1/cgroup": crioCgroup}, sign: "kubepods"},
		{name: "overlay root", files: map[string]string{"proc/1/cgroup": hostCgroupV2, "proc/1/mountinfo": overlayMountinfo}, sign: "overlay"},
		{name: "overlay mounted over /", files: map[string]string{"proc/1/mountinfo": stackedMountinfo}, sign: "overlay"},
		{name: "fuse-overlayfs root", files: map[string]string{"proc/1/mountinfo": fuseMountinfo}, sign: "fuse-overlayfs"},
		{name: "PID namespace in sched", files: map[string]string{"proc/1/cgroup": hostCgroupV2, "proc/1/mountinfo": hostMountinfo, "proc/1/sched": nsSched}, sign: "PID 48213"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHost(t, tc.files, tc.env)
			sign, ok := h.ContainerSign()
			if ok != (tc.sign != "") || !strings.Contains(sign, tc.sign) {
				t.Errorf("ContainerSign() = %q, %v; want a sign naming %q", sign, ok, tc.sign)
			}
			err := h.CheckContainer(false)
			if tc.sign != "" {
				if err != nil {
					t.Errorf("CheckContainer refused a container: %v", err)
				}
				return
			}
			var nc *NotContainerError
			if !errors.As(err, &nc) {
				t.Fatalf("CheckContainer(false) = %v, want a refusal", err)
			}
			for _, want := range []string{"--force", "--mode chroot", "Nothing was written", "no /.dockerenv"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q: %v", want, err)
				}
			}
			if err := h.CheckContainer(true); err != nil {
				t.Errorf("CheckContainer(force) = %v, want nil", err)
			}
		})
	}
}

func TestNewRefusesInPlaceOutsideContainers(t *testing.T) {
	host := fakeHost(t, map[string]string{"proc/1/cgroup": hostCgroupV2, "proc/1/mountinfo": hostMountinfo}, nil)
	var nc *NotContainerError
	if _, err := New(InPlace, withHost(host)); !errors.As(err, &nc) {
		t.Fatalf("New(InPlace) on a host = %v, want *NotContainerError", err)
	}
	if _, err := New(InPlace, withHost(host), WithForce()); err != nil {
		t.Errorf("New(InPlace, WithForce()) = %v", err)
	}
	if _, err := New(Chroot, withHost(host)); err != nil {
		t.Errorf("chroot mode needs no container: %v", err)
	}
	inPod := fakeHost(t, nil, map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
	if _, err := New(InPlace, withHost(inPod)); err != nil {
		t.Errorf("New(InPlace) in a pod = %v", err)
	}
}

func TestSchedPID(t *testing.T) {
	for in, want := range map[string]int{
		hostSched:                        1,
		nsSched:                          48213,
		"my (odd) name (7, #threads: 2)": 7,
	} {
		if got, ok := schedPID([]byte(in)); !ok || got != want {
			t.Errorf("schedPID(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "garbage", "x (y, z)"} {
		if got, ok := schedPID([]byte(in)); ok {
			t.Errorf("schedPID(%q) = %d, want no PID", in, got)
		}
	}
}

func fakeHost(t *testing.T, files, env map[string]string) Host {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Host{Root: root, LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
}
