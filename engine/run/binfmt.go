package run

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BinfmtDir is where the kernel shows its binfmt_misc handlers.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// ErrExecFormat marks a RUN whose command the kernel could not execute
// (ENOEXEC): a binary for another architecture with no binfmt_misc handler
// for it, most likely. Test with errors.Is.
var ErrExecFormat error = syscall.ENOEXEC

// Emulation is how this machine runs a platform's binaries.
type Emulation struct {
	// Native is set when no emulation is needed.
	Native bool
	// Handler names the binfmt_misc entry that runs them ("qemu-aarch64")
	// and Interpreter its program; both are empty when Native is set, or
	// when Unknown is.
	Handler, Interpreter string
	// Unknown is set when binfmt_misc cannot be read here (a container
	// sees none by default, while the node's handlers still apply to it):
	// RUN is then tried, and an exec format error explained.
	Unknown bool
}

// PlatformError says that RUN cannot execute binaries for a platform here,
// and what to install.
type PlatformError struct {
	Target, Host string
	Reason       string
	// Err is the failure behind Reason, if any (an exec format error).
	Err error
}

func (e *PlatformError) Unwrap() error { return e.Err }

func (e *PlatformError) Error() string {
	return fmt.Sprintf("RUN for %s on this %s machine: %s. Slipway never registers handlers itself: install QEMU user emulation on the machine "+
		"(Debian: apt-get install qemu-user-static; on Kubernetes, run a binfmt DaemonSet on the nodes, e.g. tonistiigi/binfmt --install %s), "+
		"build on a %s node, or avoid RUN for that platform (FROM --platform=$BUILDPLATFORM with TARGETARCH cross-compiles natively)",
		e.Target, e.Host, e.Reason, archName(e.Target), e.Target)
}

func archName(platform string) string {
	p, err := platforms.Parse(platform)
	if err != nil {
		return platform
	}
	return p.Architecture
}

// CheckPlatform reports how RUN can execute binaries for target on host,
// reading the binfmt_misc handlers in dir (BinfmtDir in production). It
// fails when target needs emulation and no enabled handler takes its ELF
// binaries, or when the handler lacks the F (fix-binary) flag: without it
// the kernel looks the interpreter up inside the root at each exec, and
// neither a build's chroot nor an image unpacked over / has it.
func CheckPlatform(dir string, target, host ocispec.Platform) (Emulation, error) {
	target, host = platforms.Normalize(target), platforms.Normalize(host)
	if RunsNatively(host, target) {
		return Emulation{Native: true}, nil
	}
	perr := &PlatformError{Target: platforms.Format(target), Host: platforms.Format(host)}
	if target.OS != "linux" {
		perr.Reason = "only linux binaries can be run"
		return Emulation{}, perr
	}
	header, ok := elfHeader(target)
	if !ok {
		perr.Reason = "Slipway does not know how its binaries look, so it cannot find an emulator for them"
		return Emulation{}, perr
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		// Not mounted: a default container sees no binfmt_misc.
		return Emulation{Unknown: true}, nil
	}
	if strings.TrimSpace(string(status)) != "enabled" {
		perr.Reason = "binfmt_misc is disabled on this machine (" + filepath.Join(dir, "status") + ")"
		return Emulation{}, perr
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Emulation{}, fmt.Errorf("reading binfmt_misc handlers: %w", err)
	}
	var withoutF *binfmtEntry
	for _, de := range entries {
		if de.Name() == "status" || de.Name() == "register" {
			continue
		}
		e, err := readBinfmtEntry(filepath.Join(dir, de.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			return Emulation{}, err
		}
		if !e.enabled || !e.matches(header) {
			continue
		}
		if !strings.Contains(e.flags, "F") {
			withoutF = e
			continue
		}
		return Emulation{Handler: e.name, Interpreter: e.interpreter}, nil
	}
	if withoutF != nil {
		perr.Reason = fmt.Sprintf("the binfmt_misc handler %s runs them with %s but lacks the F (fix-binary) flag, so the kernel would look for %s inside the build's root, where it is not; register it with the F flag (Debian's qemu-user-static and tonistiigi/binfmt do)",
			withoutF.name, withoutF.interpreter, withoutF.interpreter)
		return Emulation{}, perr
	}
	perr.Reason = "no binfmt_misc handler for its binaries is registered (" + dir + ")"
	return Emulation{}, perr
}

// RunsNatively reports whether host executes target's binaries itself,
// without emulation.
func RunsNatively(host, target ocispec.Platform) bool {
	host, target = platforms.Normalize(host), platforms.Normalize(target)
	if host.OS != target.OS {
		return false
	}
	if host.Architecture == target.Architecture && (host.Variant == target.Variant || host.Architecture != "arm") {
		return true
	}
	return host.Architecture == "amd64" && target.Architecture == "386"
}

// elfMachines are the ELF class, byte order and machine of each
// architecture's binaries.
var elfMachines = map[string]struct {
	class   byte // 1: 32-bit, 2: 64-bit
	big     bool
	machine uint16
}{
	"386":      {1, false, 3},
	"amd64":    {2, false, 62},
	"arm":      {1, false, 40},
	"arm64":    {2, false, 183},
	"ppc64le":  {2, false, 21},
	"ppc64":    {2, true, 21},
	"s390x":    {2, true, 22},
	"riscv64":  {2, false, 243},
	"mips64le": {2, false, 8},
	"mips64":   {2, true, 8},
	"mipsle":   {1, false, 8},
	"mips":     {1, true, 8},
	"loong64":  {2, false, 258},
}

// elfHeader is the start of a static executable for p: what binfmt_misc's
// magic strings are matched against.
func elfHeader(p ocispec.Platform) ([]byte, bool) {
	m, ok := elfMachines[p.Architecture]
	if !ok {
		return nil, false
	}
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4] = m.class
	var order binary.ByteOrder = binary.LittleEndian
	h[5] = 1
	if m.big {
		order = binary.BigEndian
		h[5] = 2
	}
	h[6] = 1 // EI_VERSION
	order.PutUint16(h[16:], 2)
	order.PutUint16(h[18:], m.machine)
	order.PutUint32(h[20:], 1)
	return h, true
}

// binfmtEntry is one handler as /proc/sys/fs/binfmt_misc/NAME shows it.
type binfmtEntry struct {
	name, interpreter, flags string
	enabled                  bool
	offset                   int
	magic, mask              []byte
}

func readBinfmtEntry(path string) (*binfmtEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	e := &binfmtEntry{name: filepath.Base(path)}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(line, " ")
		switch {
		case line == "enabled":
			e.enabled = true
		case key == "interpreter":
			e.interpreter = value
		case key == "flags:":
			e.flags = value
		case key == "offset":
			e.offset, _ = strconv.Atoi(value)
		case key == "magic":
			e.magic, _ = hex.DecodeString(value)
		case key == "mask":
			e.mask, _ = hex.DecodeString(value)
		}
	}
	return e, nil
}

// matches applies the handler's magic and mask to header, as the kernel
// does. Extension handlers have no magic and never match.
func (e *binfmtEntry) matches(header []byte) bool {
	if len(e.magic) == 0 || e.offset < 0 || e.offset+len(e.magic) > len(header) {
		return false
	}
	got := bytes.Clone(header[e.offset : e.offset+len(e.magic)])
	want := bytes.Clone(e.magic)
	if len(e.mask) == len(e.magic) {
		for i := range got {
			got[i] &= e.mask[i]
			want[i] &= e.mask[i]
		}
	}
	return bytes.Equal(got, want)
}
