// Command clusterimg makes and pushes the images the test cluster needs,
// with go-containerregistry, since no public registry can be reached:
//
//	clusterimg scratch -o out.tar -tag REF [-user UID] [-env K=V]... [-entrypoint PATH] SRC=DEST...
//	clusterimg busybox -o out.tar -tag REF [-busybox BIN -arch ARCH]
//	clusterimg push -user U -password P TARBALL|LAYOUT REF
//	clusterimg push-index -user U -password P REF TARBALL...
//
// scratch writes a FROM-scratch image holding the given static binaries
// (Tekton wants /ko-app/<name>, Argo's pods find argoexec on PATH); busybox
// writes one from the machine's busybox-static (or another architecture's,
// from Debian's busybox-static:ARCH) with its applets linked in /bin. Both
// are docker-loadable tarballs, for `ctr images import`. push sends a
// tarball's image, or the image index of an OCI layout (`make image`'s
// multi-platform executor), to the cluster registry and prints REF@digest;
// push-index pushes the tarballs' images as one index, each under the
// platform its config names.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch keeps the images reproducible: the same binaries give the same
// digest, so containerd's content store does not grow on every start.
var epoch = time.Unix(0, 0).UTC()

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: clusterimg scratch|busybox|push ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "scratch":
		err = scratchCmd(os.Args[2:])
	case "busybox":
		err = busyboxCmd(os.Args[2:])
	case "push":
		err = pushCmd(os.Args[2:])
	case "push-index":
		err = pushIndexCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want scratch, busybox, push or push-index", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterimg:", err)
		os.Exit(1)
	}
}

func scratchCmd(args []string) error {
	fs := flag.NewFlagSet("scratch", flag.ExitOnError)
	out := fs.String("o", "", "docker tarball to write")
	tag := fs.String("tag", "", "image reference to tag the tarball with")
	user := fs.String("user", "", "image user (numeric: the image has no /etc/passwd)")
	entry := fs.String("entrypoint", "", "entrypoint path inside the image")
	var env multi
	fs.Var(&env, "env", "K=V environment, repeatable")
	_ = fs.Parse(args)
	if *out == "" || *tag == "" || fs.NArg() == 0 {
		return errors.New("scratch needs -o, -tag and at least one SRC=DEST")
	}
	var files []file
	for _, a := range fs.Args() {
		src, dest, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want SRC=DEST", a)
		}
		files = append(files, file{src: src, dest: dest})
	}
	cfg := v1.Config{User: *user, Env: env}
	if *entry != "" {
		cfg.Entrypoint = []string{*entry}
	}
	return write(*out, *tag, files, nil, cfg, "amd64")
}

func busyboxCmd(args []string) error {
	fs := flag.NewFlagSet("busybox", flag.ExitOnError)
	out := fs.String("o", "", "docker tarball to write")
	tag := fs.String("tag", "", "image reference to tag the tarball with")
	bb := fs.String("busybox", "/bin/busybox", "a static busybox binary")
	arch := fs.String("arch", "amd64", "the binary's architecture, for the image config")
	_ = fs.Parse(args)
	if *out == "" || *tag == "" {
		return errors.New("busybox needs -o and -tag")
	}
	// The applets are listed by the machine's own busybox-static, which
	// runs without emulation: Debian builds every architecture of one
	// version with the same configuration.
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return fmt.Errorf("listing applets of /bin/busybox (is busybox-static installed?): %w", err)
	}
	var links []string
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			links = append(links, "/bin/"+a)
		}
	}
	cfg := v1.Config{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"sh"},
	}
	return write(*out, *tag, []file{{src: *bb, dest: "/bin/busybox"}}, links, cfg, *arch)
}

func pushCmd(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	user := fs.String("user", "", "registry user")
	pass := fs.String("password", "", "registry password")
	_ = fs.Parse(args)
	if fs.NArg() != 2 {
		return errors.New("push needs TARBALL REF")
	}
	src, dst := fs.Arg(0), fs.Arg(1)
	// The cluster registry speaks plain HTTP inside the cluster's netns.
	ref, err := name.ParseReference(dst, name.Insecure)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", dst, err)
	}
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: *user, Password: *pass}))
	var d v1.Hash
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		idx, err := layoutIndex(src)
		if err != nil {
			return err
		}
		if err := remote.WriteIndex(ref, idx, auth); err != nil {
			return fmt.Errorf("pushing %s to %s: %w", src, ref.Context().RegistryStr(), err)
		}
		if d, err = idx.Digest(); err != nil {
			return err
		}
	} else {
		img, err := tarball.ImageFromPath(src, nil)
		if err != nil {
			return fmt.Errorf("reading image tarball %s: %w", src, err)
		}
		if err := remote.Write(ref, img, auth); err != nil {
			return fmt.Errorf("pushing %s to %s: %w", src, ref.Context().RegistryStr(), err)
		}
		if d, err = img.Digest(); err != nil {
			return err
		}
	}
	fmt.Printf("%s@%s\n", ref.Context().Name(), d)
	return nil
}

// layoutIndex is the one image index an OCI layout holds, as
// slipway-index --oci-layout-path writes it.
func layoutIndex(dir string) (v1.ImageIndex, error) {
	l, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the OCI layout %s: %w", dir, err)
	}
	m, err := l.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("the OCI layout %s holds %d manifests, want one image index (make image writes it)", dir, len(m.Manifests))
	}
	return l.ImageIndex(m.Manifests[0].Digest)
}

func pushIndexCmd(args []string) error {
	fs := flag.NewFlagSet("push-index", flag.ExitOnError)
	user := fs.String("user", "", "registry user")
	pass := fs.String("password", "", "registry password")
	_ = fs.Parse(args)
	if fs.NArg() < 2 {
		return errors.New("push-index needs REF and one TARBALL per platform")
	}
	ref, err := name.ParseReference(fs.Arg(0), name.Insecure)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", fs.Arg(0), err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, src := range fs.Args()[1:] {
		img, err := tarball.ImageFromPath(src, nil)
		if err != nil {
			return fmt.Errorf("reading image tarball %s: %w", src, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}}})
	}
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: *user, Password: *pass}))
	if err := remote.WriteIndex(ref, idx, auth); err != nil {
		return fmt.Errorf("pushing the index to %s: %w", ref.Context().RegistryStr(), err)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", ref.Context().Name(), d)
	return nil
}

type file struct{ src, dest string }

// write builds a one-layer image of files (mode 0755, parents created) and
// symlinks to /bin/busybox, and saves it as a docker tarball tagged tag.
func write(out, tag string, files []file, links []string, cfg v1.Config, arch string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parts []string
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			parts = append([]string{d}, parts...)
		}
		for _, d := range parts {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range files {
		b, err := os.ReadFile(f.src)
		if err != nil {
			return fmt.Errorf("reading %s: %w", f.src, err)
		}
		if err := mkdirs(f.dest); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.dest, "/"), Mode: 0o755, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	for _, l := range links {
		if err := mkdirs(l); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(l, "/"), Linkname: "/bin/busybox", Mode: 0o777, ModTime: epoch}); err != nil {
			return err
		}
	}
	// Pods write /tmp; an empty world-writable one saves every user an emptyDir.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.Created = v1.Time{Time: epoch}
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("parsing tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}
