package harness_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/registry"
)

func TestStartRegistry(t *testing.T) {
	tests := []struct {
		name       string
		opts       []harness.Option
		wantScheme string
		wantStatus int
	}{
		{"plain", nil, "http", http.StatusOK},
		{"htpasswd", []harness.Option{harness.WithHtpasswd("alice", "s3cret")}, "http", http.StatusUnauthorized},
		{"tls", []harness.Option{harness.WithTLS()}, "https", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := harness.StartRegistry(t, tt.opts...)
			if !strings.HasPrefix(reg.Host, "127.0.0.1:") {
				t.Fatalf("Host = %q, want 127.0.0.1:PORT", reg.Host)
			}
			resp, err := reg.HTTPClient(t).Get(tt.wantScheme + "://" + reg.Host + "/v2/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("GET /v2/ = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if reg.User != "" {
				req, _ := http.NewRequest(http.MethodGet, tt.wantScheme+"://"+reg.Host+"/v2/", nil)
				req.SetBasicAuth(reg.User, reg.Password)
				resp, err := reg.HTTPClient(t).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET /v2/ with the htpasswd credentials = %d, want 200", resp.StatusCode)
				}
			}
		})
	}
}

func TestDockerConfigDir(t *testing.T) {
	reg := harness.StartRegistry(t, harness.WithHtpasswd("bob", "pw"))
	dir := reg.DockerConfigDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// base64("bob:pw")
	if !strings.Contains(string(data), reg.Host) || !strings.Contains(string(data), "Ym9iOnB3") {
		t.Errorf("config.json = %s, want an auth entry for %s", data, reg.Host)
	}
}

// files reads a flattened image into name → header.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(hdr.Name, "./")] = hdr
	}
}

func TestBusybox(t *testing.T) {
	reg := harness.StartRegistry(t)
	ref := harness.Busybox(t, reg)
	img, err := reg.Client().Pull(context.Background(), ref, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	fs := files(t, img)
	sh := fs["bin/sh"]
	if sh == nil || sh.Typeflag != tar.TypeSymlink || sh.Linkname != "busybox" {
		t.Fatalf("/bin/sh = %+v, want a symlink to busybox", sh)
	}
	if bb := fs["bin/busybox"]; bb == nil || bb.Typeflag != tar.TypeReg || bb.Mode&0o111 == 0 {
		t.Fatalf("/bin/busybox = %+v, want an executable file", bb)
	}
	for _, applet := range []string{"ls", "cat", "sed", "grep", "find", "readlink", "stat"} {
		if fs["bin/"+applet] == nil {
			t.Errorf("applet /bin/%s missing", applet)
		}
	}
	if tmp := fs["tmp"]; tmp == nil || tmp.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp = %+v, want mode 1777", tmp)
	}
	if home := fs["home/app"]; home == nil || home.Uid != 1000 {
		t.Errorf("/home/app = %+v, want owner 1000", home)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "sh" {
		t.Errorf("config = %s/%s Cmd %v, want linux/amd64 Cmd [sh]", cf.OS, cf.Architecture, cf.Config.Cmd)
	}
	if len(cf.Config.Env) == 0 || !strings.HasPrefix(cf.Config.Env[0], "PATH=") {
		t.Errorf("Env = %v, want PATH", cf.Config.Env)
	}
	// Pushed once per registry: a second call returns the same reference.
	if again := harness.Busybox(t, reg); again != ref {
		t.Errorf("second Busybox() = %q, want %q", again, ref)
	}
}

func TestBusyboxIndex(t *testing.T) {
	reg := harness.StartRegistry(t)
	ref := harness.BusyboxIndex(t, reg)
	c := reg.Client()
	tests := []struct {
		platform v1.Platform
		wantFile string
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "bin/busybox"},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, "ARCH"},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "ARCH"},
	}
	for _, tt := range tests {
		t.Run(tt.platform.String(), func(t *testing.T) {
			img, err := c.Pull(context.Background(), ref, tt.platform)
			if err != nil {
				t.Fatal(err)
			}
			if files(t, img)[tt.wantFile] == nil {
				t.Errorf("image for %s lacks %s", tt.platform, tt.wantFile)
			}
		})
	}
	_, err := c.Pull(context.Background(), ref, v1.Platform{OS: "linux", Architecture: "s390x"})
	var perr *registry.PlatformError
	if !errors.As(err, &perr) {
		t.Fatalf("pull for s390x: err = %v, want a PlatformError", err)
	}
	for _, want := range []string{ref, "linux/s390x", "linux/amd64", "linux/arm64/v8"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestAptMirror(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{
			name: "one-line sources.list",
			files: map[string]string{"etc/apt/sources.list": "# comment\n" +
				"deb http://security.example/debian-security bookworm-security main\n" +
				"deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib\n"},
			want: "http://mirror.example/debian",
		},
		{
			name: "deb822 with security and third-party first",
			files: map[string]string{
				"etc/apt/sources.list.d/a-node.sources": "Types: deb\nURIs: https://deb.nodesource.example/node_20.x\nSuites: nodistro\nComponents: main\n",
				"etc/apt/sources.list.d/debian.sources": "Types: deb\n# http://snapshot.example\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n\n" +
					"Types: deb deb-src\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n",
			},
			want: "http://deb.example/debian",
		},
		{
			name: "disabled stanza and deb-src skipped",
			files: map[string]string{
				"etc/apt/sources.list":                   "deb-src http://src.example/debian bookworm main\n",
				"etc/apt/sources.list.d/debian.sources":  "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\nTypes: deb\nURIs: http://on.example/debian\nSuites: bookworm\n",
				"etc/apt/sources.list.d/x.list.disabled": "deb http://never.example/debian bookworm main\n",
			},
			want: "http://on.example/debian",
		},
		{name: "none", files: map[string]string{"etc/apt/sources.list": "deb http://x.example/ubuntu jammy main\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				harness.WriteFile(t, filepath.Join(root, name), content)
			}
			got, err := harness.AptMirror(root, "bookworm")
			if tt.want == "" {
				if err == nil {
					t.Fatalf("AptMirror = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("AptMirror = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestDebian bootstraps (once per machine; minutes the first time) and
// pushes the Debian base the parity tests build on.
func TestDebian(t *testing.T) {
	reg := harness.StartRegistry(t)
	ref := harness.Debian(t, reg)
	img, err := reg.Client().Pull(context.Background(), ref, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	fs := files(t, img)
	for _, want := range []string{"usr/bin/apt-get", "usr/bin/dpkg", "etc/debian_version", "var/lib/dpkg/status"} {
		if fs[want] == nil {
			t.Errorf("Debian image lacks /%s", want)
		}
	}
	for name := range fs {
		if strings.HasPrefix(name, "proc/") || strings.HasPrefix(name, "sys/") {
			t.Errorf("Debian image holds %s from a virtual filesystem", name)
		}
	}
}
