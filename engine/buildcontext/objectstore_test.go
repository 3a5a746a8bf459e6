package buildcontext

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// TestS3 runs against gofakes3, a real S3 server, on loopback, with the
// AWS SDK pointed at it by S3_ENDPOINT and S3_FORCE_PATH_STYLE. A wrapper
// refuses any access key but the test's, as S3 does, to prove the SDK's
// credential chain is used and auth failures are reported as such.
func TestS3(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("contexts"); err != nil {
		t.Fatal(err)
	}
	good := gzipBytes(t, makeTar(t, sampleEntries()...))
	for key, body := range map[string][]byte{
		"team/app.tar.gz":      good,
		"team/my app+1.tar.gz": good,
		"readme.txt":           []byte("just text"),
		"bomb.tar.gz":          gzipBytes(t, makeTar(t, entry{name: "zeros", typ: '0', mode: 0o644, size: 32 << 20})),
	} {
		if _, err := backend.PutObject("contexts", key, map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
			t.Fatal(err)
		}
	}
	fake := gofakes3.New(backend).Server()
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if !strings.Contains(r.Header.Get("Authorization"), "Credential=AKIDSLIPWAY/") || !validSigV4(r, "secret") {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()

	// The SDK's default chain reads the process environment.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSLIPWAY")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	env := envMap(map[string]string{"S3_ENDPOINT": srv.URL, "S3_FORCE_PATH_STYLE": "true"})

	t.Run("fetch", func(t *testing.T) {
		dir, cleanup, err := Prepare(context.Background(), "s3://contexts/team/app.tar.gz", t.TempDir(), Options{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		assertTree(t, dir, sampleTree())
		mu.Lock()
		defer mu.Unlock()
		if len(paths) == 0 || paths[len(paths)-1] != "/contexts/team/app.tar.gz" {
			t.Errorf("requests %v: want a path-style GET of /contexts/team/app.tar.gz", paths)
		}
	})
	t.Run("key to escape", func(t *testing.T) {
		dir, cleanup, err := Prepare(context.Background(), "s3://contexts/team/my app+1.tar.gz", t.TempDir(), Options{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		assertTree(t, dir, sampleTree())
	})
	for _, tc := range []struct {
		name, url string
		env       map[string]string
		want      error
		msg       string
	}{
		{name: "missing key", url: "s3://contexts/nope.tar.gz", want: ErrNotFound, msg: "s3://contexts/nope.tar.gz"},
		{name: "missing bucket", url: "s3://nobucket/app.tar.gz", want: ErrNotFound},
		{name: "not a tarball", url: "s3://contexts/readme.txt", want: ErrNotTarball},
		{name: "bomb", url: "s3://contexts/bomb.tar.gz", want: ErrTooLarge},
		{name: "bad path style value", url: "s3://contexts/team/app.tar.gz", env: map[string]string{"S3_ENDPOINT": srv.URL, "S3_FORCE_PATH_STYLE": "maybe"}, msg: "S3_FORCE_PATH_STYLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env
			if tc.env != nil {
				e = envMap(tc.env)
			}
			_, _, err := Prepare(context.Background(), tc.url, t.TempDir(), Options{Env: e, MaxSize: 8 << 20})
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	t.Run("wrong access key", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDOTHER")
		_, _, err := Prepare(context.Background(), "s3://contexts/team/app.tar.gz", t.TempDir(), Options{Env: env})
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "InvalidAccessKeyId") {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})
}

// validSigV4 checks a request's SigV4 signature as S3 does: the canonical
// request rebuilt from what arrived (path as sent, host, the signed
// headers), signed again with the secret, must give the same
// Authorization.
func validSigV4(r *http.Request, secret string) bool {
	auth := r.Header.Get("Authorization")
	_, scope, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return false
	}
	parts := strings.Split(strings.Split(scope, ",")[0], "/") // AKID/date/region/s3/aws4_request
	if len(parts) != 5 {
		return false
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return false
	}
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	for _, h := range strings.Split(signed, ";") {
		if h != "host" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: parts[0], SecretAccessKey: secret},
		again, r.Header.Get("X-Amz-Content-Sha256"), "s3", parts[2], when, func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	return err == nil && again.Header.Get("Authorization") == auth
}

// TestS3VirtualHostAndRegion: without S3_FORCE_PATH_STYLE the bucket is
// the host's first label, and a bucket in another region than the one
// signed for is asked again, signed for the region its answer names.
func TestS3VirtualHostAndRegion(t *testing.T) {
	good := gzipBytes(t, makeTar(t, sampleEntries()...))
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, scope, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		seen = append(seen, r.Host+r.URL.EscapedPath()+" "+strings.Split(scope, "/")[2])
		if !validSigV4(r, "secret") {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>`)
			return
		}
		if !strings.Contains(scope, "/eu-central-1/s3/") {
			w.Header().Set("X-Amz-Bucket-Region", "eu-central-1")
			w.WriteHeader(http.StatusMovedPermanently)
			fmt.Fprint(w, `<Error><Code>PermanentRedirect</Code><Message>use the bucket's region</Message></Error>`)
			return
		}
		w.Write(good)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSLIPWAY")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-west-2")
	t.Setenv("AWS_CA_BUNDLE", "") // the SDK refuses one with a caller's http.Client
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	env := envMap(map[string]string{"S3_ENDPOINT": "http://objects.test"})
	dir, cleanup, err := Prepare(context.Background(), "s3://contexts/team/app.tar.gz", t.TempDir(), Options{Env: env, HTTPClient: client})
	if err != nil {
		t.Fatalf("%v after requests %q", err, seen)
	}
	defer cleanup()
	assertTree(t, dir, sampleTree())
	want := []string{"contexts.objects.test/team/app.tar.gz us-west-2", "contexts.objects.test/team/app.tar.gz eu-central-1"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("requests = %q, want %q", seen, want)
	}
}

// TestGCS is request-level: an httptest server speaks the part of the GCS
// JSON API that a read uses (GET /storage/v1/b/B/o/O?alt=media, and its
// JSON errors), reached through STORAGE_EMULATOR_HOST with no auth.
func TestGCS(t *testing.T) {
	good := gzipBytes(t, makeTar(t, sampleEntries()...))
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.EscapedPath()+"?alt="+r.URL.Query().Get("alt"))
		mu.Unlock()
		jsonErr := func(code int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"errors":[{"message":%q,"reason":"x"}]}}`, code, msg, msg)
		}
		switch r.URL.EscapedPath() {
		case "/storage/v1/b/ctx-bucket/o/team%2Fapp.tar.gz":
			if r.URL.Query().Get("alt") != "media" {
				jsonErr(http.StatusBadRequest, "want alt=media")
				return
			}
			w.Header().Set("Content-Type", "application/gzip")
			w.Header().Set("Content-Length", fmt.Sprint(len(good)))
			w.Header().Set("X-Goog-Generation", "1700000000000000")
			w.Header().Set("X-Goog-Metageneration", "1")
			w.Write(good)
		case "/storage/v1/b/private/o/app.tar.gz":
			jsonErr(http.StatusForbidden, "caller does not have storage.objects.get access")
		default:
			jsonErr(http.StatusNotFound, "No such object")
		}
	}))
	defer srv.Close()
	env := envMap(map[string]string{"STORAGE_EMULATOR_HOST": strings.TrimPrefix(srv.URL, "http://")})

	dir, cleanup, err := Prepare(context.Background(), "gs://ctx-bucket/team/app.tar.gz", t.TempDir(), Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	assertTree(t, dir, sampleTree())
	if want := "GET /storage/v1/b/ctx-bucket/o/team%2Fapp.tar.gz?alt=media"; len(seen) != 1 || seen[0] != want {
		t.Errorf("requests = %q, want [%q]", seen, want)
	}

	for _, tc := range []struct {
		url  string
		want error
	}{
		{"gs://ctx-bucket/nope.tar.gz", ErrNotFound},
		{"gs://private/app.tar.gz", ErrAuth},
	} {
		_, _, err := Prepare(context.Background(), tc.url, t.TempDir(), Options{Env: env})
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.url) {
			t.Errorf("%s: err = %v, want %v naming the URL", tc.url, err, tc.want)
		}
	}
}

// TestGCSApplicationDefaultCredentials is the path without an emulator:
// an access token from Application Default Credentials (here an
// authorized_user file whose token endpoint is on loopback), sent as a
// bearer token to storage.googleapis.com, whose HTTPS connection goes to a
// TLS httptest server.
func TestGCSApplicationDefaultCredentials(t *testing.T) {
	good := gzipBytes(t, makeTar(t, sampleEntries()...))
	var tokenRequests int
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests++
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != "slipway-refresh" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Bad Request"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"slipway-access","token_type":"Bearer","expires_in":3600}`)
	}))
	defer tokens.Close()
	var seen []string
	gcs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Host+" "+r.URL.EscapedPath()+" "+r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer slipway-access" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":401,"message":"Invalid Credentials"}}`)
			return
		}
		w.Write(good)
	}))
	defer gcs.Close()
	tr := gcs.Client().Transport.(*http.Transport).Clone()
	// Only storage.googleapis.com goes to the TLS server; the token
	// endpoint is plain HTTP on loopback already.
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "storage.googleapis.com:443" {
			addr = gcs.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr.TLSClientConfig.InsecureSkipVerify = true // the cert names 127.0.0.1, not Google's host
	client := &http.Client{Transport: tr}

	writeCreds := func(refresh string) {
		creds := filepath.Join(t.TempDir(), "adc.json")
		body := fmt.Sprintf(`{"type":"authorized_user","client_id":"id","client_secret":"secret","refresh_token":%q,"token_uri":%q}`, refresh, tokens.URL+"/token")
		if err := os.WriteFile(creds, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", creds)
	}

	writeCreds("slipway-refresh")
	dir, cleanup, err := Prepare(context.Background(), "gs://ctx-bucket/team/app.tar.gz", t.TempDir(), Options{HTTPClient: client, Env: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	assertTree(t, dir, sampleTree())
	if want := "storage.googleapis.com /storage/v1/b/ctx-bucket/o/team%2Fapp.tar.gz Bearer slipway-access"; len(seen) != 1 || seen[0] != want || tokenRequests != 1 {
		t.Errorf("requests = %q after %d token requests, want [%q] after 1", seen, tokenRequests, want)
	}

	writeCreds("revoked")
	_, _, err = Prepare(context.Background(), "gs://ctx-bucket/team/app.tar.gz", t.TempDir(), Options{HTTPClient: client, Env: envMap(nil)})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "invalid_grant") || !strings.Contains(err.Error(), "gs://ctx-bucket/team/app.tar.gz") {
		t.Errorf("refused refresh token: err = %v, want ErrAuth naming the URL and the token endpoint's answer", err)
	}
}

// azureServer speaks enough of the Blob service for a download: GET of a
// blob, signed with Shared Key. It checks the signature the way Azure
// does, so a wrong key is refused with AuthenticationFailed.
type azureServer struct {
	account string
	key     []byte
	blobs   map[string][]byte // "/container/blob" -> body
	prefix  string            // path prefix before the container, for emulator-style URLs
}

func (a *azureServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, errCode string) {
		w.Header().Set("x-ms-error-code", errCode)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, errCode, errCode)
	}
	auth := r.Header.Get("Authorization")
	sig, ok := strings.CutPrefix(auth, "SharedKey "+a.account+":")
	if !ok {
		fail(http.StatusForbidden, "NoAuthenticationInformation")
		return
	}
	if want := a.sign(r); !hmac.Equal([]byte(sig), []byte(want)) {
		fail(http.StatusForbidden, "AuthenticationFailed")
		return
	}
	body, ok := a.blobs[strings.TrimPrefix(r.URL.Path, a.prefix)]
	if !ok || r.Method != http.MethodGet {
		fail(http.StatusNotFound, "BlobNotFound")
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"0x8DB0000000000"`)
	w.Header().Set("Last-Modified", "Tue, 02 Jan 2024 03:04:05 GMT")
	w.Header().Set("x-ms-blob-type", "BlockBlob")
	w.Header().Set("x-ms-version", r.Header.Get("x-ms-version"))
	w.Write(body)
}

// sign is the Blob service's Shared Key string-to-sign, HMAC-SHA256'd.
func (a *azureServer) sign(r *http.Request) string {
	h := r.Header
	contentLength := h.Get("Content-Length")
	if contentLength == "0" {
		contentLength = ""
	}
	var xms []string
	for k := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-ms-") {
			xms = append(xms, lk)
		}
	}
	sort.Strings(xms)
	var canonHeaders strings.Builder
	for _, k := range xms {
		canonHeaders.WriteString(k + ":" + strings.Join(h.Values(k), ",") + "\n")
	}
	resource := "/" + a.account + r.URL.EscapedPath()
	q := r.URL.Query()
	var keys []string
	for k := range q {
		keys = append(keys, strings.ToLower(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		resource += "\n" + k + ":" + strings.Join(q[k], ",")
	}
	toSign := strings.Join([]string{r.Method, h.Get("Content-Encoding"), h.Get("Content-Language"), contentLength,
		h.Get("Content-MD5"), h.Get("Content-Type"), h.Get("Date"), h.Get("If-Modified-Since"), h.Get("If-Match"),
		h.Get("If-None-Match"), h.Get("If-Unmodified-Since"), h.Get("Range")}, "\n") + "\n" + canonHeaders.String() + resource
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestAzureBlob is request-level: kaniko's form (the account's host in the
// URL, AZURE_STORAGE_ACCESS_KEY) with the HTTPS connection redirected to a
// TLS httptest server, and Azure's connection string with a BlobEndpoint
// on loopback, as Azurite is used.
func TestAzureBlob(t *testing.T) {
	key := []byte("slipway-test-account-key-32bytes")
	keyB64 := base64.StdEncoding.EncodeToString(key)
	good := gzipBytes(t, makeTar(t, sampleEntries()...))

	t.Run("account key, kaniko form", func(t *testing.T) {
		az := &azureServer{account: "acct", key: key, blobs: map[string][]byte{"/ctr/team/app.tar.gz": good}}
		srv := httptest.NewTLSServer(az)
		defer srv.Close()
		// Send acct.blob.core.windows.net to the loopback server.
		client := srv.Client()
		tr := client.Transport.(*http.Transport).Clone()
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
		}
		tr.TLSClientConfig.InsecureSkipVerify = true // the cert names 127.0.0.1, not the Azure host
		client = &http.Client{Transport: tr}

		for _, tc := range []struct {
			name, url, key string
			want           error
		}{
			{name: "fetch", url: "https://acct.blob.core.windows.net/ctr/team/app.tar.gz", key: keyB64},
			{name: "wrong key", url: "https://acct.blob.core.windows.net/ctr/team/app.tar.gz", key: base64.StdEncoding.EncodeToString([]byte("wrong")), want: ErrAuth},
			{name: "missing blob", url: "https://acct.blob.core.windows.net/ctr/nope.tar.gz", key: keyB64, want: ErrNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				opts := Options{HTTPClient: client, Env: envMap(map[string]string{"AZURE_STORAGE_ACCESS_KEY": tc.key})}
				dir, cleanup, err := Prepare(context.Background(), tc.url, t.TempDir(), opts)
				if tc.want != nil {
					if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.url) {
						t.Fatalf("err = %v, want %v naming %s", err, tc.want, tc.url)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				defer cleanup()
				assertTree(t, dir, sampleTree())
			})
		}
	})

	// A SAS token, in the URL or in a connection string, is sent as the
	// query as given, with no Authorization; a failing connection never
	// shows the token.
	t.Run("SAS", func(t *testing.T) {
		var seen []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.URL.EscapedPath()+"?"+r.URL.RawQuery+" auth="+r.Header.Get("Authorization"))
			if r.URL.Query().Get("sig") != "s3cret" {
				w.Header().Set("x-ms-error-code", "AuthenticationFailed")
				w.WriteHeader(http.StatusForbidden)
				return
			}
			w.Write(good)
		}))
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
		}}}
		for _, tc := range []struct {
			name, url string
			env       map[string]string
			want      error
		}{
			{name: "in the URL", url: "http://acct.blob.core.windows.net/ctr/team/app.tar.gz?sv=2021-12-02&sig=s3cret"},
			{name: "in a connection string", url: "https://acct.blob.core.windows.net/ctr/team/app.tar.gz",
				env: map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "BlobEndpoint=http://acct.blob.core.windows.net/;SharedAccessSignature=sv=2021-12-02&sig=s3cret"}},
			{name: "wrong token", url: "http://acct.blob.core.windows.net/ctr/team/app.tar.gz?sv=2021-12-02&sig=wrong", want: ErrAuth},
			{name: "anonymous, refused", url: "http://acct.blob.core.windows.net/ctr/team/app.tar.gz", want: ErrAuth},
		} {
			t.Run(tc.name, func(t *testing.T) {
				seen = nil
				_, cleanup, err := Prepare(context.Background(), tc.url, t.TempDir(), Options{HTTPClient: client, Env: envMap(tc.env)})
				if tc.want != nil {
					if !errors.Is(err, tc.want) || strings.Contains(err.Error(), "wrong") {
						t.Fatalf("err = %v, want %v without the token", err, tc.want)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				cleanup()
				if want := "/ctr/team/app.tar.gz?sv=2021-12-02&sig=s3cret auth="; len(seen) != 1 || seen[0] != want {
					t.Errorf("requests = %q, want [%q]", seen, want)
				}
			})
		}
		srv.Close()
		_, _, err := Prepare(context.Background(), "http://acct.blob.core.windows.net/ctr/app.tar.gz?sv=1&sig=s3cret", t.TempDir(), Options{HTTPClient: client, Env: envMap(nil)})
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("a refused connection: err = %v, want an error without the SAS token", err)
		}
	})

	t.Run("connection string", func(t *testing.T) {
		az := &azureServer{account: "devacct", key: key, prefix: "/devacct", blobs: map[string][]byte{"/ctr/app.tar.gz": good}}
		srv := httptest.NewServer(az)
		defer srv.Close()
		cs := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devacct;AccountKey=%s;BlobEndpoint=%s/devacct;", keyB64, srv.URL)
		dir, cleanup, err := Prepare(context.Background(), "https://devacct.blob.core.windows.net/ctr/app.tar.gz", t.TempDir(),
			Options{Env: envMap(map[string]string{"AZURE_STORAGE_CONNECTION_STRING": cs})})
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		assertTree(t, dir, sampleTree())
	})
}
