package userdb

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func testRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n# comment\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nstaff:x:50:app,other\napps:x:1001:\nwheel:x:10:app\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolveUser(t *testing.T) {
	root := testRoot(t)
	tests := []struct {
		spec    string
		want    User
		wantErr string
	}{
		{spec: "root", want: User{UID: 0, GID: 0, Groups: []uint32{0}, Home: "/root"}},
		{spec: "app", want: User{UID: 1000, GID: 1001, Groups: []uint32{1001, 50, 10}, Home: "/home/app"}},
		{spec: "1000", want: User{UID: 1000, GID: 1001, Groups: []uint32{1001, 50, 10}, Home: "/home/app"}},
		{spec: "4242", want: User{UID: 4242, GID: 0, Groups: []uint32{0}, Home: "/"}},
		{spec: "1000:0", want: User{UID: 1000, GID: 0, Groups: []uint32{0}, Home: "/home/app"}},
		{spec: "app:staff", want: User{UID: 1000, GID: 50, Groups: []uint32{50}, Home: "/home/app"}},
		{spec: "app:7", want: User{UID: 1000, GID: 7, Groups: []uint32{7}, Home: "/home/app"}},
		{spec: "root:root", want: User{UID: 0, GID: 0, Groups: []uint32{0}, Home: "/root"}},
		{spec: "ghost", wantErr: "unable to find user ghost"},
		{spec: "app:ghosts", wantErr: "unable to find group ghosts"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ResolveUser(root, tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveChown(t *testing.T) {
	root := testRoot(t)
	tests := []struct {
		spec     string
		uid, gid uint32
		wantErr  string
	}{
		{spec: "app", uid: 1000, gid: 1001}, // BuildKit: a name alone takes its passwd gid
		{spec: "55", uid: 55, gid: 55},
		{spec: "app:apps", uid: 1000, gid: 1001},
		{spec: "1:2", uid: 1, gid: 2},
		{spec: "ghost", wantErr: "unable to find user ghost"},
		{spec: "app:nogroup", wantErr: "unable to find group nogroup"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			uid, gid, err := ResolveChown(root, tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil || uid != tt.uid || gid != tt.gid {
				t.Errorf("got %d:%d %v, want %d:%d", uid, gid, err, tt.uid, tt.gid)
			}
		})
	}
}

func TestScratchRootHasNumericIDsOnly(t *testing.T) {
	root := t.TempDir()
	if _, err := ResolveUser(root, "1234:5"); err != nil {
		t.Errorf("numeric user in a scratch image: %v", err)
	}
	if _, err := ResolveUser(root, "app"); err == nil {
		t.Error("a named user in a scratch image must fail")
	}
}

func TestEtcSymlinkStaysInRoot(t *testing.T) {
	root := testRoot(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("evil:x:0:0::/:/bin/sh\n"), 0o644)
	os.RemoveAll(filepath.Join(root, "etc"))
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveUser(root, "evil"); err == nil {
		t.Error("an absolute /etc symlink was followed outside the root")
	}
}

func TestResolveUserWithoutPasswd(t *testing.T) {
	empty := t.TempDir()
	for spec, want := range map[string]User{
		"root:root": {UID: 0, GID: 0, Groups: []uint32{0}, Home: "/"},
		"5:6":       {UID: 5, GID: 6, Groups: []uint32{6}, Home: "/"},
		"5":         {UID: 5, GID: 0, Groups: []uint32{0}, Home: "/"},
	} {
		got, err := ResolveUser(empty, spec)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, %v; want %+v", spec, got, err, want)
		}
	}
	// BuildKit's RUN (GetExecUser) finds no user "root" without a
	// passwd file; only WORKDIR's file operation takes the name as 0.
	if _, err := ResolveUser(empty, "root"); err == nil {
		t.Error("USER root resolved without /etc/passwd for a process")
	}
}

func TestResolveFileOwner(t *testing.T) {
	root := testRoot(t)
	empty := t.TempDir()
	tests := []struct {
		root     string
		spec     string
		uid, gid uint32
	}{
		{root: root, spec: "root", uid: 0, gid: 0},
		{root: root, spec: "app", uid: 1000, gid: 1001},  // the passwd entry's gid
		{root: root, spec: "1000", uid: 1000, gid: 1000}, // a number is uid and gid, passwd or not
		{root: root, spec: "9999", uid: 9999, gid: 9999}, // no entry
		{root: root, spec: "ghost", uid: 0, gid: 0},      // BuildKit: no entry, root
		{root: root, spec: "app:staff", uid: 1000, gid: 50},
		{root: root, spec: "app:7", uid: 1000, gid: 7},
		{root: root, spec: "app:root", uid: 1000, gid: 0},
		{root: root, spec: "app:ghosts", uid: 1000, gid: 1001}, // unknown group: the gid stays
		{root: root, spec: "app:", uid: 1000, gid: 1001},
		{root: empty, spec: "root", uid: 0, gid: 0},
		{root: empty, spec: "9999", uid: 9999, gid: 9999},
		{root: empty, spec: "root:root", uid: 0, gid: 0},
		{root: empty, spec: "app", uid: 0, gid: 0},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			uid, gid, err := ResolveFileOwner(tt.root, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if uid != tt.uid || gid != tt.gid {
				t.Errorf("got %d:%d, want %d:%d", uid, gid, tt.uid, tt.gid)
			}
		})
	}
}
