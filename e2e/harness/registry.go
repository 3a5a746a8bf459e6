// Package harness starts the real parts Slipway's tests run against: the
// CNCF distribution registry on loopback (plain, with htpasswd auth, or with
// TLS from a generated CA), and base images built from local packages
// (busybox-static, debootstrap) and pushed with Slipway's own registry code.
// It is imported by the tests of every package; it is not itself a test.
package harness

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/crypto/bcrypt"

	"github.com/slipway-build/slipway/engine/registry"
)

// RegistryBinary is the distribution registry from Debian's docker-registry.
const RegistryBinary = "/usr/bin/docker-registry"

// Registry is a running distribution registry on 127.0.0.1.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	// CAFile is the PEM CA that signed the server certificate (WithTLS).
	CAFile string
	// User and Password are the htpasswd credentials (WithHtpasswd).
	User, Password string
	// Dir holds the registry's config, storage and log.
	Dir string
}

// Option configures StartRegistry.
type Option func(*registryConfig)

type registryConfig struct {
	user, pass string
	tls        bool
}

// WithHtpasswd requires basic auth with user and pass.
func WithHtpasswd(user, pass string) Option {
	return func(c *registryConfig) { c.user, c.pass = user, pass }
}

// WithTLS serves HTTPS with a certificate for 127.0.0.1 signed by a fresh CA.
func WithTLS() Option { return func(c *registryConfig) { c.tls = true } }

// StartRegistry runs the distribution registry binary on a free loopback
// port with storage in a temp dir, waits until /v2/ answers, and stops it
// when the test ends.
func StartRegistry(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	SkipIfShort(t, "the distribution registry")
	if _, err := os.Stat(RegistryBinary); err != nil {
		t.Fatalf("the distribution registry %s is missing: apt-get install docker-registry", RegistryBinary)
	}
	var cfg registryConfig
	for _, o := range opts {
		o(&cfg)
	}
	dir := t.TempDir()
	r := &Registry{Dir: dir, User: cfg.user, Password: cfg.pass}
	var extra strings.Builder
	if cfg.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(cfg.pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := WriteFile(t, filepath.Join(dir, "htpasswd"), cfg.user+":"+string(hash)+"\n")
		fmt.Fprintf(&extra, "auth:\n  htpasswd:\n    realm: slipway-test\n    path: %s\n", htpasswd)
	}
	var tlsBlock string
	if cfg.tls {
		ca, cert, key := generateCerts(t, dir)
		r.CAFile = ca
		tlsBlock = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}

	// A port found free can be taken before the registry binds it; a few
	// attempts make that race harmless.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		r.Host = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		config := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s%s`, filepath.Join(dir, "storage"), r.Host, tlsBlock, extra.String())
		configPath := WriteFile(t, filepath.Join(dir, "config.yml"), config)
		if lastErr = r.start(t, configPath); lastErr == nil {
			return r
		}
	}
	t.Fatalf("starting %s: %v", RegistryBinary, lastErr)
	return nil
}

func (r *Registry) start(t testing.TB, configPath string) error {
	logPath := filepath.Join(r.Dir, "registry.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(RegistryBinary, "serve", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	// Its own process group, so that it survives no signal meant for the
	// test binary's group and is ended only by its PID below.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	client := r.HTTPClient(t)
	scheme := "http"
	if r.CAFile != "" {
		scheme = "https"
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("registry exited (%v): %s", err, out)
		default:
		}
		resp, err := client.Get(scheme + "://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			// 401 is the answer of a registry with auth: it is up.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				t.Cleanup(func() {
					stop()
					// The registry's own account of a failure is often
					// the quickest way to its cause.
					if t.Failed() {
						t.Logf("registry %s log:\n%s", r.Host, tail(logPath, 40))
					}
				})
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	out, _ := os.ReadFile(logPath)
	return fmt.Errorf("registry on %s did not answer /v2/ within 20s: %s", r.Host, out)
}

// uploadLine matches the registry's log line for the request that completes
// a blob upload; a cross-repository mount completes without one.
var uploadLine = regexp.MustCompile(`http\.request\.method=PUT .*/blobs/uploads/.*digest=sha256%3A([0-9a-f]{64})`)

// UploadedBlobs lists the digests of every blob uploaded to the registry so
// far, from its log: what a test can hold a push's traffic to.
func (r *Registry) UploadedBlobs(t testing.TB) []string {
	t.Helper()
	return r.loggedDigests(t, uploadLine)
}

// fetchLine matches the registry's log line for a request that reads a
// blob's content (GET, not HEAD).
var fetchLine = regexp.MustCompile(`http\.request\.method=GET .*/blobs/sha256:([0-9a-f]{64})`)

// FetchedBlobs lists the digests of every blob downloaded from the
// registry so far, from its log: what a test can hold a pull's traffic to.
func (r *Registry) FetchedBlobs(t testing.TB) []string {
	t.Helper()
	return r.loggedDigests(t, fetchLine)
}

// Request is one request the registry answered, from its log.
type Request struct {
	Method string
	// Path is the request's path, without its query.
	Path      string
	UserAgent string
	Status    int
}

// requestLine matches the registry's log line for each request it
// answered: "response completed", or "response completed with error".
var requestLine = regexp.MustCompile(`msg="response completed.*?http\.request\.method=(\S+) .*?http\.request\.uri="?([^"? ]+)\S* (?:http\.request\.useragent=("[^"]*"|\S+) )?.*?http\.response\.status=(\d+)`)

// Requests lists every request the registry answered so far, in the order
// it answered them: what a test can hold a client's round trips to.
func (r *Registry) Requests(t testing.TB) []Request {
	t.Helper()
	var reqs []Request
	for _, m := range r.logMatches(t, requestLine) {
		status, _ := strconv.Atoi(m[4])
		reqs = append(reqs, Request{Method: m[1], Path: m[2], UserAgent: strings.Trim(m[3], `"`), Status: status})
	}
	return reqs
}

// loggedDigests are the digests line captures from the registry's log, in
// order, each followed by line's further captures, space-separated.
func (r *Registry) loggedDigests(t testing.TB, line *regexp.Regexp) []string {
	t.Helper()
	var digests []string
	for _, m := range r.logMatches(t, line) {
		digests = append(digests, strings.Join(append([]string{"sha256:" + m[1]}, m[2:]...), " "))
	}
	return digests
}

// logMatches are line's matches in the registry's log, in order.
func (r *Registry) logMatches(t testing.TB, line *regexp.Regexp) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.Dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	return line.FindAllStringSubmatch(string(data), -1)
}

// HTTPClient trusts the registry's CA, for tests that talk to it directly.
func (r *Registry) HTTPClient(t testing.TB) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// DockerConfigDir writes a config.json holding this registry's credentials
// and returns its directory, to be used as DOCKER_CONFIG.
func (r *Registry) DockerConfigDir(t testing.TB) string {
	return DockerConfigDir(t, r.Host, r.User, r.Password)
}

// DockerConfigDir writes a docker config.json with basic-auth credentials
// for host (none when user is empty) and returns its directory.
func DockerConfigDir(t testing.TB, host, user, pass string) string {
	t.Helper()
	auths := map[string]any{}
	if user != "" {
		auths[host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
	}
	data, err := json.MarshalIndent(map[string]any{"auths": auths}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	WriteFile(t, filepath.Join(dir, "config.json"), string(data))
	return dir
}

// ClientOptions are registry options that reach this registry: its CA, its
// credentials, and plain HTTP when it has no TLS.
func (r *Registry) ClientOptions() registry.Options {
	opts := registry.Options{Keychain: r.Keychain()}
	if r.CAFile != "" {
		opts.RegistryCertificates = map[string]string{r.Host: r.CAFile}
	} else {
		opts.InsecureRegistries = []string{r.Host}
	}
	return opts
}

// Client is an engine/registry Client for this registry.
func (r *Registry) Client() *registry.Client { return registry.New(r.ClientOptions()) }

// Keychain holds this registry's credentials, without touching the
// environment, so that tests running in parallel do not share DOCKER_CONFIG.
func (r *Registry) Keychain() authn.Keychain {
	if r.User == "" {
		return staticKeychain{host: r.Host, auth: authn.Anonymous}
	}
	return staticKeychain{host: r.Host, auth: &authn.Basic{Username: r.User, Password: r.Password}}
}

type staticKeychain struct {
	host string
	auth authn.Authenticator
}

func (k staticKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if res.RegistryStr() == k.host {
		return k.auth, nil
	}
	return authn.Anonymous, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WriteFile writes content to path, creating parent directories, and
// returns path.
func WriteFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// SkipIfShort skips t under -short, which `make unit` passes to promise
// tests that need nothing but Go: needs names the system part t would use.
// Outside a test binary (the demo runs the harness too) there is no -short.
func SkipIfShort(t testing.TB, needs string) {
	t.Helper()
	if testing.Testing() && testing.Short() {
		t.Skipf("needs %s, which -short leaves out; run without -short", needs)
	}
}
