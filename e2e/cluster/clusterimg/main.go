// Command clusterimg makes and pushes the images the test cluster needs,
// with go-containerregistry, since no public registry can be reached:
//
//	clusterimg scratch -o out.tar -tag REF [-user UID] [-env K=V]... [-entrypoint PATH] SRC=DEST...
//	clusterimg busybox -o out.tar -tag REF
//	clusterimg push -user U -password P TARBALL REF
//
// scratch writes a FROM-scratch image holding the given static binaries
// (Tekton wants /ko-app/<name>, Argo's pods find argoexec on PATH); busybox
// writes one from the machine's busybox-static with its applets linked in
// /bin. Both are docker-loadable tarballs, for `ctr images import`. push
// sends a tarball's image to the cluster registry and prints REF@digest.
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
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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
	default:
		err = fmt.Errorf("unknown command %q: want scratch, busybox or push", os.Args[1])
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
	return write(*out, *tag, files, nil, cfg)
}

func busyboxCmd(args []string) error {
	fs := flag.NewFlagSet("busybox", flag.ExitOnError)
	out := fs.String("o", "", "docker tarball to write")
	tag := fs.String("tag", "", "image reference to tag the tarball with")
	bb := fs.String("busybox", "/bin/busybox", "a static busybox binary")
	_ = fs.Parse(args)
	if *out == "" || *tag == "" {
		return errors.New("busybox needs -o and -tag")
	}
	list, err := exec.Command(*bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("listing applets of %s (is busybox-static installed?): %w", *bb, err)
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
	return write(*out, *tag, []file{{src: *bb, dest: "/bin/busybox"}}, links, cfg)
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
	img, err := tarball.ImageFromPath(src, nil)
	if err != nil {
		return fmt.Errorf("reading image tarball %s: %w", src, err)
	}
	// The cluster registry speaks plain HTTP inside the cluster's netns.
	ref, err := name.ParseReference(dst, name.Insecure)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", dst, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: *user, Password: *pass})
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		return fmt.Errorf("pushing %s to %s: %w", src, ref.Context().RegistryStr(), err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", ref.Context().Name(), d)
	return nil
}

type file struct{ src, dest string }

// write builds a one-layer image of files (mode 0755, parents created) and
// symlinks to /bin/busybox, and saves it as a docker tarball tagged tag.
func write(out, tag string, files []file, links []string, cfg v1.Config) error {
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
	cf.OS, cf.Architecture = "linux", "amd64"
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
