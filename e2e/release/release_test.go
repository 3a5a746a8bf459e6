// Package release tests `make release` end to end (in `make test`, and
// alone as `make test-release`): in a copy of the repository, against the
// distribution registry on loopback, with a throw-away cosign key.
//
// The binaries are made for every platform the release ships (linux/amd64
// and linux/arm64, release.sh's default PLATFORMS): the host's run
// natively, the other's under the machine's QEMU binfmt_misc handler
// (qemu-user-static, which .ci/deps registers). Compiling them costs little
// here: make release has already compiled the same packages for every
// image platform (build-platforms), linux/arm64 among them. The checks
// below follow the platforms and the number of images pushed, so more of
// either change nothing here.
package release

import (
	"bufio"
	"context"
	"crypto"
	"crypto/sha256"
	"debug/elf"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/attest"
	"github.com/slipway-build/slipway/engine/run"
)

const version = "v0.0.0-ci"

// releasePlatforms are the binaries' platforms, release.sh's default.
var releasePlatforms = []string{"linux/amd64", "linux/arm64"}

func TestMakeRelease(t *testing.T) {
	harness.SkipIfShort(t, "make release: it builds and pushes the release images")
	reg := harness.StartRegistry(t)
	repo := copyRepo(t)

	keys, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte("ci-password"), nil })
	if err != nil {
		t.Fatal(err)
	}
	keyDir := t.TempDir()
	key, pub := filepath.Join(keyDir, "cosign.key"), filepath.Join(keyDir, "cosign.pub")
	if err := os.WriteFile(key, keys.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, keys.PublicBytes, 0o644); err != nil {
		t.Fatal(err)
	}

	registry := reg.Host + "/rel"
	dist := filepath.Join(repo, "bin", "release")
	cmd := exec.Command("make", "release", "REGISTRY="+registry, "VERSION="+version,
		"SIGNING_KEY="+key, "TAG=1", "RELEASE_FLAGS=--insecure-registry "+reg.Host, "PLATFORMS="+strings.Join(releasePlatforms, " "))
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=ci-password", "CI=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make release: %v\n%s", err, tail(out))
	}
	t.Logf("make release:\n%s", tail(out))

	digests := readLines(t, filepath.Join(repo, "bin", "release-digests"))
	if len(digests) != 2 {
		t.Fatalf("release-digests: %q", digests)
	}
	executor, err := name.NewDigest(strings.Replace(digests[0], ":"+version+"@", "@", 1))
	if err != nil {
		t.Fatal(err)
	}
	debug, err := name.NewDigest(strings.Replace(digests[1], ":"+version+"-debug@", "@", 1))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("catalog pins the pushed digest", func(t *testing.T) {
		pinned := registry + "/slipway:" + version + "@" + executor.DigestStr()
		images, err := os.ReadFile(filepath.Join(repo, "tasks", "images.go"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(images), `"`+pinned+`"`) {
			t.Errorf("tasks/images.go does not pin %s", pinned)
		}
		task, err := os.ReadFile(filepath.Join(repo, "catalog/tekton/task/slipway-build/0.0.0-ci/slipway-build.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(task), pinned) {
			t.Errorf("the catalog's Task does not name %s", pinned)
		}
		// The tag names the release commit, which holds the pins.
		show := exec.Command("git", "show", version+":tasks/images.go")
		show.Dir = repo
		if b, err := show.Output(); err != nil || !strings.Contains(string(b), pinned) {
			t.Errorf("tag %s does not hold the pinned tasks/images.go (%v)", version, err)
		}
	})

	ctx := context.Background()
	t.Run("SBOM and provenance referrers", func(t *testing.T) {
		for _, d := range []name.Digest{executor, debug} {
			sboms, err := attest.Fetch(ctx, d, attest.SPDXArtifactType)
			if err != nil || len(sboms) != 1 {
				t.Fatalf("%s: SBOMs %d, %v", d, len(sboms), err)
			}
			doc, err := spdxjson.Read(strings.NewReader(string(sboms[0])))
			if err != nil {
				t.Fatalf("%s: SBOM does not parse: %v", d, err)
			}
			names := map[string]bool{}
			for _, p := range doc.Packages {
				names[p.PackageName] = true
			}
			for _, want := range []string{"github.com/google/go-containerregistry", "github.com/moby/buildkit", "stdlib"} {
				if !names[want] {
					t.Errorf("%s: SBOM lacks %s", d, want)
				}
			}
			provs, err := attest.Fetch(ctx, d, attest.InTotoArtifactType)
			if err != nil || len(provs) != 1 {
				t.Fatalf("%s: provenance %d, %v", d, len(provs), err)
			}
			var st attest.Statement
			if err := json.Unmarshal(provs[0], &st); err != nil {
				t.Fatalf("%s: provenance does not parse: %v", d, err)
			}
			if st.PredicateType != attest.SLSAProvenanceV1 || st.Subject[0].Digest["sha256"] != strings.TrimPrefix(d.DigestStr(), "sha256:") {
				t.Errorf("%s: provenance %s for %v", d, st.PredicateType, st.Subject)
			}
			if st.Predicate.RunDetails.Builder.Version["slipway"] != version {
				t.Errorf("%s: builder version %v", d, st.Predicate.RunDetails.Builder.Version)
			}
		}
	})

	verifier := loadVerifier(t, pub)
	t.Run("image signatures verify", func(t *testing.T) {
		for _, d := range []name.Digest{executor, debug} {
			sigs, _, err := cosign.VerifyImageSignatures(ctx, d, &cosign.CheckOpts{
				SigVerifier: verifier, IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier,
			})
			if err != nil || len(sigs) == 0 {
				t.Errorf("%s: %d signatures, %v", d, len(sigs), err)
			}
		}
		// A different key must not verify them.
		other, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return nil, nil })
		if err != nil {
			t.Fatal(err)
		}
		otherPub := filepath.Join(t.TempDir(), "other.pub")
		if err := os.WriteFile(otherPub, other.PublicBytes, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := cosign.VerifyImageSignatures(ctx, executor, &cosign.CheckOpts{
			SigVerifier: loadVerifier(t, otherPub), IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier,
		}); err == nil {
			t.Error("another key verified the executor's signature")
		}
	})

	t.Run("binaries and SHA256SUMS", func(t *testing.T) {
		sums := readLines(t, filepath.Join(dist, "SHA256SUMS"))
		want := map[string]bool{}
		for _, p := range releasePlatforms {
			for _, s := range []string{"build", "warm"} {
				want["slipway-"+s+"-"+strings.ReplaceAll(p, "/", "-")] = true
			}
		}
		for _, line := range sums {
			sum, file, ok := strings.Cut(line, "  ")
			if !ok {
				t.Fatalf("SHA256SUMS line %q", line)
			}
			b, err := os.ReadFile(filepath.Join(dist, file))
			if err != nil {
				ls, _ := exec.Command("ls", "-la", dist).CombinedOutput()
				t.Fatalf("%v\nSHA256SUMS: %q\n%s", err, sums, ls)
			}
			h := sha256.Sum256(b)
			if hex.EncodeToString(h[:]) != sum {
				t.Errorf("%s: SHA256SUMS says %s, the file hashes to %x", file, sum, h)
			}
			delete(want, file)
		}
		if len(want) > 0 {
			t.Errorf("SHA256SUMS lacks %v", want)
		}
		sig, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS.sig"))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := verifier.VerifySignature(strings.NewReader(string(raw)), f); err != nil {
			t.Errorf("SHA256SUMS.sig: %v", err)
		}
		// Every binary runs and reports the version: the host's natively,
		// another architecture's under the machine's QEMU handler.
		for _, p := range releasePlatforms {
			goos, goarch, _ := strings.Cut(p, "/")
			em, err := run.CheckPlatform(run.BinfmtDir, ocispec.Platform{OS: goos, Architecture: goarch},
				ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
			if err != nil {
				t.Errorf("the %s binaries cannot run here: %v", p, err)
				continue
			}
			for _, s := range []string{"build", "warm"} {
				bin := "slipway-" + s + "-" + strings.ReplaceAll(p, "/", "-")
				if m := elfMachine(t, filepath.Join(dist, bin)); m != machines[goarch] {
					t.Errorf("%s is an ELF for %s, not %s", bin, m, goarch)
				}
				out, err := exec.Command(filepath.Join(dist, bin), "version").CombinedOutput()
				if err != nil || !strings.Contains(string(out), "version "+version+",") {
					t.Errorf("%s version (emulated by %q): %q, %v", bin, em.Handler, out, err)
				}
			}
		}
		notes, err := os.ReadFile(filepath.Join(dist, "RELEASE_NOTES.md"))
		if err != nil || !strings.Contains(string(notes), executor.DigestStr()) {
			t.Errorf("RELEASE_NOTES.md lacks the executor digest (%v)", err)
		}
	})
}

var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func elfMachine(t *testing.T, path string) elf.Machine {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.Machine
}

func loadVerifier(t *testing.T, pubFile string) signature.Verifier {
	t.Helper()
	b, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// copyRepo copies the repository's files (tracked and untracked, not
// ignored) into a fresh git repository with one commit, so that the release
// can pin, commit and tag there and leave this checkout untouched.
func copyRepo(t *testing.T) string {
	t.Helper()
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	src := strings.TrimSpace(string(root))
	dst := t.TempDir()
	files, err := exec.Command("git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	tar := exec.Command("bash", "-c", `tar -C "$1" --null -T - -cf - --ignore-failed-read | tar -C "$2" -xf -`, "copy", src, dst)
	tar.Stdin = strings.NewReader(string(files))
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("copying the repository: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "-A"},
		{"-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-q", "-m", "source"},
		{"config", "user.name", "ci"},
		{"config", "user.email", "ci@localhost"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dst
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dst
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

var lastLines = regexp.MustCompile(`(?s)(?:[^\n]*\n){0,60}$`)

func tail(b []byte) string { return lastLines.FindString(string(b)) }
