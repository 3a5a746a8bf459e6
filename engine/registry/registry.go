// Package registry pulls and pushes images with go-containerregistry, with
// kaniko's registry options: docker config.json credentials, plain-HTTP and
// skip-verify registries, extra CA and client certificates, mirrors and
// registry maps, and retries with exponential backoff.
package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options are kaniko's registry flags.
type Options struct {
	Insecure                bool              // --insecure: push over plain HTTP
	InsecurePull            bool              // --insecure-pull
	InsecureRegistries      []string          // --insecure-registry (host[:port]); plain HTTP for these
	SkipTLSVerify           bool              // --skip-tls-verify (pushes)
	SkipTLSVerifyPull       bool              // --skip-tls-verify-pull
	SkipTLSVerifyRegistries []string          // --skip-tls-verify-registry
	RegistryCertificates    map[string]string // --registry-certificate host=path/to/ca.pem
	RegistryClientCerts     map[string]string // --registry-client-cert host=cert.pem,key.pem
	// Mirrors (--registry-mirror) are tried in order for Docker Hub pulls,
	// then Docker Hub itself unless SkipDefaultRegistryFallback.
	Mirrors                     []string
	SkipDefaultRegistryFallback bool
	// RegistryMaps (--registry-map original=remapped) are tried in order for
	// pulls from the original registry, with the same fallback rule.
	RegistryMaps       map[string][]string
	PushRetry          int // --push-retry: extra attempts after a failed push
	ImageDownloadRetry int // --image-download-retry
	// RetryDelay is the first backoff delay; it doubles on each retry.
	// Zero means one second, as kaniko.
	RetryDelay time.Duration
	Keychain   authn.Keychain // nil means NewKeychain with KanikoDir
	// KanikoDir replaces /kaniko as the directory whose .docker holds
	// credentials (--kaniko-dir).
	KanikoDir string
	// CredentialHelpers are the ambient credential sources to use (env,
	// gitlab, google, ecr, acr); nil means all, empty means none.
	CredentialHelpers []string
	// CloudSources are ambient sources a step adds after the built-in ones
	// (engine/registry/cloudauth: Google, ECR, ACR), kept out of this
	// package so that steps which need none stay small.
	CloudSources []AmbientSource
	UserAgent    string
	// Log receives pull, push and retry progress; nil means slog.Default().
	Log *slog.Logger
}

// Validate reports flag values that cannot work, so that a step can refuse
// them before building rather than on the first request.
func (o Options) Validate() error {
	for host, path := range o.RegistryCertificates {
		if _, err := loadCertPool(path); err != nil {
			return fmt.Errorf("--registry-certificate %s=%s: %w", host, path, err)
		}
	}
	for host, pair := range o.RegistryClientCerts {
		if _, err := loadClientCert(pair); err != nil {
			return fmt.Errorf("--registry-client-cert %s=%s: %w", host, pair, err)
		}
	}
	return nil
}

// Client pulls and pushes with one set of Options. It is safe for
// concurrent use; connections, and the registries' tokens, are shared
// per registry.
type Client struct {
	opts      Options
	keychain  authn.Keychain
	mu        sync.Mutex
	endpoints map[endpointKey]*endpoint
	// rangeTransports holds the authenticated transport of each
	// repository whose blobs are read by range (LayerBlob).
	rangeTransports map[string]*rangeTransport
}

type endpointKey struct {
	host string
	push bool
}

// endpoint is what a Client keeps per registry and direction: the
// connections, and one go-containerregistry Puller and Pusher over them.
// They ping the registry and fetch its token once per repository for the
// whole build, not once per request, and the Pusher remembers the blobs it
// wrote or found, so that the push at the end skips the layers uploaded
// while the build ran, or waits for an upload still in flight.
type endpoint struct {
	transport http.RoundTripper
	reuse     []remote.Option
}

// New returns a Client for opts.
func New(opts Options) *Client {
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	kc := opts.Keychain
	if kc == nil {
		kc = NewKeychain(KeychainOptions{
			KanikoDir: opts.KanikoDir,
			Sources:   append(BuiltinSources(), opts.CloudSources...),
			Enabled:   opts.CredentialHelpers,
			Log:       opts.Log,
		})
	}
	return &Client{opts: opts, keychain: kc, endpoints: map[endpointKey]*endpoint{}}
}

// Reference returns ref with its registry marked insecure when these
// Options say plain HTTP may be used for it. Pass the result, not ref, to
// remote functions together with RemoteOptions.
func (c *Client) Reference(ref name.Reference, forPush bool) name.Reference {
	reg := ref.Context().Registry
	if !c.plainHTTP(reg.Name(), forPush) {
		return ref
	}
	insecure, err := name.NewRegistry(reg.Name(), name.WeakValidation, name.Insecure)
	if err != nil {
		return ref
	}
	repo := ref.Context()
	repo.Registry = insecure
	switch r := ref.(type) {
	case name.Tag:
		r.Repository = repo
		return r
	case name.Digest:
		r.Repository = repo
		return r
	}
	return ref
}

func (c *Client) plainHTTP(host string, forPush bool) bool {
	if forPush && c.opts.Insecure || !forPush && c.opts.InsecurePull {
		return true
	}
	return slices.Contains(c.opts.InsecureRegistries, host)
}

func (c *Client) skipVerify(host string, forPush bool) bool {
	if forPush && c.opts.SkipTLSVerify || !forPush && c.opts.SkipTLSVerifyPull {
		return true
	}
	return slices.Contains(c.opts.SkipTLSVerifyRegistries, host)
}

// RemoteOptions are the go-containerregistry options for talking to ref's
// registry: transport (TLS settings, progress), credentials, user agent,
// retry backoff, and the Client's Puller and Pusher for that registry. The
// layer cache, the tables of contents and the attestations reuse them.
func (c *Client) RemoteOptions(ref name.Reference, forPush bool) []remote.Option {
	e := c.endpoint(ref.Context().RegistryStr(), forPush)
	return append(c.baseOptions(e.transport), e.reuse...)
}

func (c *Client) baseOptions(t http.RoundTripper) []remote.Option {
	opts := []remote.Option{
		remote.WithTransport(t),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithRetryBackoff(remote.Backoff{Duration: c.opts.RetryDelay, Factor: 3, Jitter: 0.1, Steps: 3}),
	}
	if c.opts.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(c.opts.UserAgent))
	}
	return opts
}

func (c *Client) transport(host string, forPush bool) http.RoundTripper {
	return c.endpoint(host, forPush).transport
}

func (c *Client) endpoint(host string, forPush bool) *endpoint {
	key := endpointKey{host, forPush}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.endpoints[key]; ok {
		return e
	}
	e := &endpoint{}
	base, err := c.newTransport(host, forPush)
	if err != nil {
		e.transport = failingTransport{err}
	} else {
		e.transport = &progressTransport{inner: base, log: c.opts.Log}
	}
	// Neither fails but on options that contradict each other, which
	// baseOptions never gives; without them each call pings on its own.
	opts := c.baseOptions(e.transport)
	if puller, err := remote.NewPuller(opts...); err == nil {
		e.reuse = append(e.reuse, remote.Reuse(puller))
	}
	if pusher, err := remote.NewPusher(opts...); err == nil {
		e.reuse = append(e.reuse, remote.Reuse(pusher))
	}
	c.endpoints[key] = e
	return e
}

func (c *Client) newTransport(host string, forPush bool) (*http.Transport, error) {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.skipVerify(host, forPush) {
		tlsConfig.InsecureSkipVerify = true //nolint:gosec // the user asked for it with --skip-tls-verify*
	}
	if path, ok := c.opts.RegistryCertificates[host]; ok {
		pool, err := loadCertPool(path)
		if err != nil {
			return nil, fmt.Errorf("--registry-certificate for %s: %w", host, err)
		}
		tlsConfig.RootCAs = pool
	}
	if pair, ok := c.opts.RegistryClientCerts[host]; ok {
		cert, err := loadClientCert(pair)
		if err != nil {
			return nil, fmt.Errorf("--registry-client-cert for %s: %w", host, err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}
	t.TLSClientConfig = tlsConfig
	return t, nil
}

// loadCertPool adds the PEM certificates at path to the system pool, so that
// a private CA is trusted in addition to, not instead of, the public ones.
func loadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate found in %s: give the CA certificate in PEM form", path)
	}
	return pool, nil
}

// loadClientCert parses kaniko's "cert.pem,key.pem" syntax.
func loadClientCert(pair string) (tls.Certificate, error) {
	certPath, keyPath, ok := strings.Cut(pair, ",")
	if !ok {
		return tls.Certificate{}, fmt.Errorf("want cert.pem,key.pem, got %q", pair)
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading client certificate %s and key %s: %w", certPath, keyPath, err)
	}
	return cert, nil
}

// failingTransport defers a configuration error to the first request, where
// it is reported with the image it concerns.
type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }
