package rootfs

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// resolverModes runs a test with openat2 and with the fallback walk, so the
// walk is proven on kernels that have openat2 too.
func resolverModes(t *testing.T, fn func(t *testing.T)) {
	for _, mode := range []string{"openat2", "walk"} {
		t.Run(mode, func(t *testing.T) {
			prev := openat2Unavailable.Load()
			openat2Unavailable.Store(mode == "walk")
			t.Cleanup(func() { openat2Unavailable.Store(prev) })
			fn(t)
		})
	}
}

func TestExtractNeverWritesOutsideRoot(t *testing.T) {
	needRoot(t)
	resolverModes(t, func(t *testing.T) {
		tests := []struct {
			name    string
			entries func(outside string) []ent
			wantErr error // nil: extraction succeeds
			errAny  bool  // some error, not a specific one
			// inside lists paths under root that must exist afterwards.
			inside []string
		}{{
			name:    "dotdot name",
			entries: func(string) []ent { return []ent{file("../../outside/x", "pwned")} },
			wantErr: ErrUnsafePath,
		}, {
			name:    "dotdot in the middle",
			entries: func(string) []ent { return []ent{file("a/../../outside/x", "pwned")} },
			wantErr: ErrUnsafePath,
		}, {
			name:    "absolute name stays in root",
			entries: func(o string) []ent { return []ent{file(o+"/x", "ok")} },
			inside:  []string{"$O/x"},
		}, {
			name: "absolute symlink parent",
			entries: func(o string) []ent {
				return []ent{symlink("etc", o), file("etc/x", "ok")}
			},
			inside: []string{"$O/x", "etc"},
		}, {
			name: "relative symlink parent climbing out",
			entries: func(string) []ent {
				return []ent{symlink("up", "../../../../../../.."), file("up/outside/x", "ok")}
			},
			inside: []string{"outside/x"},
		}, {
			name: "symlink chain through a directory",
			entries: func(o string) []ent {
				return []ent{dir("d"), symlink("d/l1", "../l2"), symlink("l2", o), file("d/l1/x", "ok")}
			},
			inside: []string{"$O/x"},
		}, {
			name:    "hardlink target with dotdot",
			entries: func(string) []ent { return []ent{hardlink("pw", "../outside/secret")} },
			wantErr: ErrUnsafePath,
		}, {
			name:    "hardlink to absolute host file",
			entries: func(o string) []ent { return []ent{hardlink("pw", o+"/secret")} },
			wantErr: unix.ENOENT,
		}, {
			name: "hardlink through symlinked parent",
			entries: func(o string) []ent {
				return []ent{symlink("l", o), hardlink("pw", "l/secret")}
			},
			wantErr: unix.ENOENT,
		}, {
			name: "symlink loop",
			entries: func(string) []ent {
				return []ent{symlink("a", "b"), symlink("b", "a"), file("a/x", "loop")}
			},
			wantErr: unix.ELOOP,
		}, {
			name: "file over a symlink replaces the symlink",
			entries: func(o string) []ent {
				return []ent{symlink("s", o+"/secret"), file("s", "mine")}
			},
			inside: []string{"s"},
		}, {
			name: "whiteout through symlinked parent",
			entries: func(o string) []ent {
				return []ent{symlink("d", o), file("d/.wh.secret", "")}
			},
		}, {
			name: "opaque through symlinked parent",
			entries: func(o string) []ent {
				return []ent{symlink("d", o), file("d/.wh..wh..opq", "")}
			},
			inside: []string{"$O"},
		}, {
			name: "device through symlinked parent",
			entries: func(o string) []ent {
				return []ent{symlink("d", o), with(file("d/null", ""), func(h *tar.Header) {
					h.Typeflag = tar.TypeChar
					h.Devmajor, h.Devminor = 1, 3
				})}
			},
			inside: []string{"$O/null"},
		}}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tmp := t.TempDir()
				root := filepath.Join(tmp, "root")
				outside := filepath.Join(tmp, "outside")
				mustMkdir(t, root)
				mustMkdir(t, outside)
				secret := filepath.Join(outside, "secret")
				if err := os.WriteFile(secret, []byte("keep"), 0o600); err != nil {
					t.Fatal(err)
				}
				// Entries name the sentinel by its host path; inside the
				// root that same path must land under root.
				entries := tc.entries(outside)
				err := Extract(root, mktar(t, entries...), NewIndex())
				switch {
				case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
					t.Errorf("Extract error = %v, want %v", err, tc.wantErr)
				case err != nil && !strings.Contains(err.Error(), "layer entry"):
					t.Errorf("error %q does not name the layer entry", err)
				case tc.errAny && err == nil:
					t.Errorf("Extract succeeded, want an error")
				case tc.wantErr == nil && !tc.errAny && err != nil:
					t.Errorf("Extract: %v", err)
				}
				assertSentinel(t, outside)
				for _, p := range tc.inside {
					// $O stands for the sentinel's host path, as seen
					// from inside the root.
					hp := filepath.Join(root, strings.ReplaceAll(p, "$O", outside))
					if _, err := os.Lstat(hp); err != nil {
						t.Errorf("want %s inside root: %v", hp, err)
					}
				}
			})
		}
	})
}

func assertSentinel(t *testing.T, outside string) {
	t.Helper()
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatalf("sentinel dir: %v", err)
	}
	if len(ents) != 1 || ents[0].Name() != "secret" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("sentinel dir changed: %v", names)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(outside, "secret"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 1 {
		t.Errorf("sentinel file gained a hardlink: nlink %d", st.Nlink)
	}
	b, err := os.ReadFile(filepath.Join(outside, "secret"))
	if err != nil || string(b) != "keep" {
		t.Errorf("sentinel file changed: %q, %v", b, err)
	}
}

func mustMkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// In in-place mode the pod's mounts are ignored paths inside the root. An
// entry reaching one through a symlink is skipped, and so are the
// directories its lookup would have made there: they would land in the
// mounted volume, on the host.
func TestExtractMakesNothingInIgnoredPaths(t *testing.T) {
	needRoot(t)
	resolverModes(t, func(t *testing.T) {
		root := t.TempDir()
		mnt := filepath.Join(root, "mnt")
		mustMkdir(t, mnt)
		layer := mktar(t,
			symlink("d", "/mnt/new/deeper"), file("d/pwned", "x"),
			symlink("o", "/mnt/opq/deeper"), file("o/.wh..wh..opq", ""),
			symlink("w", "/mnt/wh/deeper"), file("w/.wh.x", ""),
			symlink("up", "../../.."), dir("up/mnt/dir/"), file("up/mnt/sub/f", "x"),
			file("kept", "x"),
		)
		err := Extract(root, layer, NewIndex(), WithIgnoreList(NewIgnoreList("/mnt")))
		if err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(mnt)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			t.Errorf("extraction made /mnt/%s in an ignored path", e.Name())
		}
		if _, err := os.Stat(filepath.Join(root, "kept")); err != nil {
			t.Errorf("the entries after the skipped ones are missing: %v", err)
		}
	})
}
