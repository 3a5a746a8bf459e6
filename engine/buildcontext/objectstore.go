package buildcontext

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/encoding/httpbinding"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// Environment variables read for object storage, besides the AWS SDK's
// and Google's Application Default credential chains (AWS_*,
// GOOGLE_APPLICATION_CREDENTIALS, …).
const (
	// EnvS3Endpoint and EnvS3ForcePathStyle are kaniko's: an S3-compatible
	// endpoint (MinIO, Ceph…) and path-style bucket addressing.
	EnvS3Endpoint       = "S3_ENDPOINT"
	EnvS3ForcePathStyle = "S3_FORCE_PATH_STYLE"
	// EnvGCSEmulatorHost is the GCS SDKs' own: send requests to this host
	// instead of Google, without authentication.
	EnvGCSEmulatorHost = "STORAGE_EMULATOR_HOST"
	// EnvAzureAccessKey is kaniko's: the storage account key, for the
	// account named in the blob URL's host.
	EnvAzureAccessKey = "AZURE_STORAGE_ACCESS_KEY"
	// EnvAzureConnectionString is Azure's own; its BlobEndpoint, if any,
	// replaces the URL's host (Azurite and other emulators).
	EnvAzureConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
)

// splitBucketURL splits scheme://bucket/key.
func splitBucketURL(contextURL, scheme string) (bucket, key string, err error) {
	rest := strings.TrimPrefix(contextURL, scheme+"://")
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" || key == "" {
		return "", "", fmt.Errorf("build context %s: want %s://BUCKET/PATH/TO/CONTEXT.tar.gz", contextURL, scheme)
	}
	return bucket, key, nil
}

// extractDownload extracts an object's body into dest, refusing first an
// object whose stated size (-1: unknown) is over max.
func extractDownload(ctx context.Context, src fmt.Stringer, body io.Reader, size int64, dest string, max int64) error {
	if size > max {
		return fmt.Errorf("build context %s: %w: the object is %s bytes, over the %d-byte limit", src, ErrTooLarge, strconv.FormatInt(size, 10), max)
	}
	if err := Extract(ctx, body, dest, max); err != nil {
		return fmt.Errorf("build context %s: %w", src, err)
	}
	return nil
}

// s3Source is s3://BUCKET/KEY, a tarball read with one SigV4-signed GET
// under the AWS SDK's default credential chain (environment, profile, web
// identity, instance role). Not the S3 client: its generated API is 5 MB
// of the binary, for this one request; the credential chain and the
// signer are linked for ECR anyway.
type s3Source struct {
	bucket, key string
	opts        Options
}

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func newS3Source(contextURL string, opts Options) (*s3Source, error) {
	b, k, err := splitBucketURL(contextURL, "s3")
	if err != nil {
		return nil, err
	}
	return &s3Source{bucket: b, key: k, opts: opts}, nil
}

func (s *s3Source) String() string { return "s3://" + s.bucket + "/" + s.key }

// s3Target is where the GET goes and how it is signed.
type s3Target struct {
	endpoint  *url.URL // scheme and host; a path prefix is kept
	pathStyle bool
	region    string
	creds     aws.Credentials
}

func (s *s3Source) target(ctx context.Context) (s3Target, error) {
	var loadOpts []func(*awsconfig.LoadOptions) error
	if s.opts.HTTPClient != nil {
		loadOpts = append(loadOpts, awsconfig.WithHTTPClient(s.opts.HTTPClient))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return s3Target{}, fmt.Errorf("build context %s: loading AWS configuration: %w", s, err)
	}
	t := s3Target{region: cfg.Region}
	if t.region == "" {
		// S3 needs a region to sign; a wrong one is corrected from the
		// bucket's answer (see Fetch), and S3-compatible servers ignore it.
		t.region = "us-east-1"
	}
	if v := s.opts.Env(EnvS3ForcePathStyle); v != "" {
		if t.pathStyle, err = strconv.ParseBool(v); err != nil {
			return s3Target{}, fmt.Errorf("build context %s: %s=%q is not true or false", s, EnvS3ForcePathStyle, v)
		}
	}
	// kaniko's S3_ENDPOINT, else the SDK's own endpoint settings.
	endpoint := cmp.Or(s.opts.Env(EnvS3Endpoint), s.opts.Env("AWS_ENDPOINT_URL_S3"), aws.ToString(cfg.BaseEndpoint))
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	if endpoint == "" {
		endpoint = s3RegionEndpoint(t.region)
	}
	if t.endpoint, err = url.Parse(strings.TrimSuffix(endpoint, "/")); err != nil || t.endpoint.Host == "" {
		return s3Target{}, fmt.Errorf("build context %s: S3 endpoint %q is not a URL", s, endpoint)
	}
	// A bucket that cannot be a host name label (dots over TLS break the
	// certificate's wildcard) is addressed by path, as the SDK does.
	if !s3VirtualHostable(s.bucket, t.endpoint.Scheme) {
		t.pathStyle = true
	}
	if t.creds, err = cfg.Credentials.Retrieve(ctx); err != nil {
		return s3Target{}, fmt.Errorf("build context %s: %w: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the pod an IAM role): %v", s, ErrAuth, err)
	}
	return t, nil
}

func s3RegionEndpoint(region string) string {
	suffix := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return "https://s3." + region + "." + suffix
}

var s3DNSBucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func s3VirtualHostable(bucket, scheme string) bool {
	return s3DNSBucket.MatchString(bucket) && !strings.Contains(bucket, "..") &&
		!(scheme == "https" && strings.Contains(bucket, "."))
}

// request is the signed GET of the object.
func (s *s3Source) request(ctx context.Context, t s3Target) (*http.Request, error) {
	u := *t.endpoint
	prefix := strings.TrimSuffix(u.EscapedPath(), "/")
	key := httpbinding.EscapePath(s.key, false)
	if t.pathStyle {
		u.RawPath = prefix + "/" + httpbinding.EscapePath(s.bucket, true) + "/" + key
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + s.bucket + "/" + s.key
	} else {
		u.Host = s.bucket + "." + u.Host
		u.RawPath = prefix + "/" + key
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + s.key
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", s, err)
	}
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	// S3 signs the path as sent: it is escaped already.
	err = v4.NewSigner().SignHTTP(ctx, t.creds, req, emptySHA256, "s3", t.region, time.Now(), func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = true
	})
	if err != nil {
		return nil, fmt.Errorf("build context %s: signing the request: %w", s, err)
	}
	return req, nil
}

func (s *s3Source) Fetch(ctx context.Context, dest string) error {
	t, err := s.target(ctx)
	if err != nil {
		return err
	}
	client := s.opts.httpClient()
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		req, err := s.request(ctx, t)
		if err != nil {
			return err
		}
		if resp, err = client.Do(req); err != nil {
			return fmt.Errorf("build context %s: downloading: %w", s, unwrapURLError(err))
		}
		// A bucket in another region than the one signed for says which;
		// sign for that one, once.
		region := resp.Header.Get("X-Amz-Bucket-Region")
		if resp.StatusCode == http.StatusOK || attempt > 0 || region == "" || region == t.region {
			break
		}
		resp.Body.Close()
		if endpoint := s3RegionEndpoint(t.region); t.endpoint.String() == endpoint {
			t.endpoint, _ = url.Parse(s3RegionEndpoint(region))
		}
		t.region = region
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s.wrap(resp)
	}
	return extractDownload(ctx, s, resp.Body, resp.ContentLength, dest, s.opts.MaxSize)
}

// wrap turns an S3 error response (an XML Error document) into the
// package's errors.
func (s *s3Source) wrap(resp *http.Response) error {
	var body struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	_ = xml.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	switch body.Code {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("build context %s: %w: no object %s in bucket %s", s, ErrNotFound, s.key, s.bucket)
	case "NoSuchBucket":
		return fmt.Errorf("build context %s: %w: no bucket %s", s, ErrNotFound, s.bucket)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "ExpiredToken", "InvalidToken":
		return fmt.Errorf("build context %s: %w: %s: %s; check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, the pod's IAM role)", s, ErrAuth, body.Code, body.Message)
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("build context %s: %w (HTTP 404)", s, ErrNotFound)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("build context %s: %w (HTTP %d); check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, the pod's IAM role)", s, ErrAuth, resp.StatusCode)
	}
	return fmt.Errorf("build context %s: downloading: HTTP %s: %s %s", s, resp.Status, body.Code, body.Message)
}

// gcsSource is gs://BUCKET/OBJECT, a tarball read with one GET of the GCS
// JSON API (alt=media) under Application Default Credentials. Not
// cloud.google.com/go/storage: it links gRPC, xDS and OpenTelemetry, over
// half of the whole binary, for this one request.
type gcsSource struct {
	bucket, object string
	opts           Options
}

// gcsEndpoint is the JSON API's root; STORAGE_EMULATOR_HOST replaces its host.
const gcsEndpoint = "https://storage.googleapis.com"

// gcsReadScope is the one OAuth scope a context download needs.
const gcsReadScope = "https://www.googleapis.com/auth/devstorage.read_only"

func newGCSSource(contextURL string, opts Options) (*gcsSource, error) {
	b, k, err := splitBucketURL(contextURL, "gs")
	if err != nil {
		return nil, err
	}
	return &gcsSource{bucket: b, object: k, opts: opts}, nil
}

func (s *gcsSource) String() string { return "gs://" + s.bucket + "/" + s.object }

// endpoint is the API root and the request's Authorization header: none
// for an emulator, as the SDKs do, else a bearer token from Application
// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, the
// metadata server of GCE and GKE workload identity).
func (s *gcsSource) endpoint(ctx context.Context, client *http.Client) (root, authorization string, err error) {
	if host := s.opts.Env(EnvGCSEmulatorHost); host != "" {
		if !strings.Contains(host, "://") {
			host = "http://" + host
		}
		return strings.TrimSuffix(host, "/"), "", nil
	}
	const hint = "set GOOGLE_APPLICATION_CREDENTIALS, or give the pod a workload identity"
	// The token requests go through the same client as the download.
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
	creds, err := google.FindDefaultCredentials(ctx, gcsReadScope)
	if err != nil {
		return "", "", fmt.Errorf("build context %s: %w: no Google credentials (%s): %v", s, ErrAuth, hint, err)
	}
	tok, err := creds.TokenSource.Token()
	if err != nil {
		return "", "", fmt.Errorf("build context %s: %w: getting a Google access token (%s): %v", s, ErrAuth, hint, unwrapURLError(err))
	}
	return gcsEndpoint, tok.Type() + " " + tok.AccessToken, nil
}

func (s *gcsSource) Fetch(ctx context.Context, dest string) error {
	client := s.opts.httpClient()
	root, authorization, err := s.endpoint(ctx, client)
	if err != nil {
		return err
	}
	u := root + "/storage/v1/b/" + url.PathEscape(s.bucket) + "/o/" + url.PathEscape(s.object) + "?alt=media"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("build context %s: downloading: %w", s, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s.wrap(resp)
	}
	// Where the transport undid a gzip Content-Encoding the length is
	// unknown; GCS states the stored size in its own header.
	size := resp.ContentLength
	if v, err := strconv.ParseInt(resp.Header.Get("X-Goog-Stored-Content-Length"), 10, 64); err == nil {
		size = v
	}
	return extractDownload(ctx, s, resp.Body, size, dest, s.opts.MaxSize)
}

// wrap turns a JSON API error response into the package's errors, with the
// message GCS gave.
func (s *gcsSource) wrap(resp *http.Response) error {
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	msg := body.Error.Message
	if msg == "" {
		msg = resp.Status
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("build context %s: %w: no object %s in bucket %s (%s)", s, ErrNotFound, s.object, s.bucket, msg)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("build context %s: %w (HTTP %d: %s); check GOOGLE_APPLICATION_CREDENTIALS or the pod's workload identity", s, ErrAuth, resp.StatusCode, msg)
	}
	return fmt.Errorf("build context %s: downloading: HTTP %d: %s", s, resp.StatusCode, msg)
}

var azureBlobSuffixes = []string{
	".blob.core.windows.net",
	".blob.core.chinacloudapi.cn",
	".blob.core.cloudapi.de",
	".blob.core.usgovcloudapi.net",
}

// isAzureBlobHost is kaniko's test for an Azure Blob context URL.
func isAzureBlobHost(host string) bool {
	host = strings.ToLower(host)
	for _, s := range azureBlobSuffixes {
		if strings.HasSuffix(host, s) && len(host) > len(s) {
			return true
		}
	}
	return false
}

// azureSource is https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB, a
// tarball read with one GET of the Blob service's REST API. Credentials,
// first found wins: a connection string, the account key (kaniko's
// AZURE_STORAGE_ACCESS_KEY), a SAS token in the URL's query, else
// anonymous access to a public container. Not the azblob SDK: it links
// Apache Arrow and the whole Blob API, 5 MB of the binary, for this one
// request.
type azureSource struct {
	url                *url.URL
	account            string
	container, blobKey string
	opts               Options
}

// azureVersion is the Blob service API version the requests ask for;
// Azurite and the sovereign clouds all serve it.
const azureVersion = "2021-12-02"

func newAzureSource(u *url.URL, opts Options) (*azureSource, error) {
	account, _, _ := strings.Cut(u.Hostname(), ".")
	container, blob, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	s := &azureSource{url: u, account: account, container: container, blobKey: blob, opts: opts}
	if container == "" || blob == "" {
		return nil, fmt.Errorf("build context %s: want https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH/TO/CONTEXT.tar.gz", s)
	}
	return s, nil
}

func (s *azureSource) String() string { return redactURL(s.url.String()) }

// azureTarget is where the GET goes: the service URL (with a SAS query, if
// any) and, for Shared Key, the account and its decoded key.
type azureTarget struct {
	service *url.URL
	account string
	key     []byte
}

// target reads the credentials in the order the type comment gives.
func (s *azureSource) target() (azureTarget, error) {
	if cs := s.opts.Env(EnvAzureConnectionString); cs != "" {
		return parseAzureConnectionString(cs)
	}
	t := azureTarget{service: &url.URL{Scheme: s.url.Scheme, Host: s.url.Host, Path: "/"}}
	if key := s.opts.Env(EnvAzureAccessKey); key != "" {
		k, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			return azureTarget{}, fmt.Errorf("%w: %s is not a valid account key: %v", ErrAuth, EnvAzureAccessKey, err)
		}
		t.account, t.key = s.account, k
		return t, nil
	}
	t.service.RawQuery = s.url.RawQuery
	return t, nil
}

// parseAzureConnectionString reads the keys azblob reads: the service URL
// from BlobEndpoint, else DefaultEndpointsProtocol, AccountName and
// EndpointSuffix; then AccountName with AccountKey, or SharedAccessSignature.
func parseAzureConnectionString(cs string) (azureTarget, error) {
	fields := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimRight(cs, ";"), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return azureTarget{}, fmt.Errorf("%s: %q is not KEY=VALUE", EnvAzureConnectionString, k)
		}
		fields[k] = v
	}
	service, ok := fields["BlobEndpoint"]
	if !ok {
		account, ok := fields["AccountName"]
		if !ok {
			return azureTarget{}, fmt.Errorf("%s needs either AccountName or BlobEndpoint", EnvAzureConnectionString)
		}
		protocol, suffix := cmp.Or(fields["DefaultEndpointsProtocol"], "https"), cmp.Or(fields["EndpointSuffix"], "core.windows.net")
		service = protocol + "://" + account + ".blob." + suffix
	}
	u, err := url.Parse(strings.TrimSuffix(service, "/") + "/")
	if err != nil {
		return azureTarget{}, fmt.Errorf("%s: BlobEndpoint %q: %v", EnvAzureConnectionString, service, err)
	}
	t := azureTarget{service: u}
	account, hasAccount := fields["AccountName"]
	key, hasKey := fields["AccountKey"]
	switch sas, hasSAS := fields["SharedAccessSignature"]; {
	case hasAccount && hasKey:
		if t.key, err = base64.StdEncoding.DecodeString(key); err != nil {
			return azureTarget{}, fmt.Errorf("%w: the AccountKey of %s is not a valid account key: %v", ErrAuth, EnvAzureConnectionString, err)
		}
		t.account = account
	case hasSAS:
		u.RawQuery = strings.TrimPrefix(sas, "?")
	default:
		return azureTarget{}, fmt.Errorf("%s needs either AccountKey or SharedAccessSignature", EnvAzureConnectionString)
	}
	return t, nil
}

// blobURL is the service URL joined with the container and blob names,
// each path segment escaped.
func (t azureTarget) blobURL(container, blob string) *url.URL {
	u := *t.service
	segments := append([]string{container}, strings.Split(blob, "/")...)
	for i, seg := range segments {
		segments[i] = url.PathEscape(seg)
	}
	u.RawPath = strings.TrimSuffix(u.EscapedPath(), "/") + "/" + strings.Join(segments, "/")
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + container + "/" + blob
	return &u
}

// signSharedKey sets the Authorization of a Blob service request signed
// with the account key (Shared Key, the string-to-sign of API versions
// 2009-09-19 and later).
func signSharedKey(req *http.Request, account string, key []byte) {
	h := req.Header
	var xms []string
	for k := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-ms-") {
			xms = append(xms, lk)
		}
	}
	slices.Sort(xms)
	var b strings.Builder
	for _, v := range []string{req.Method, h.Get("Content-Encoding"), h.Get("Content-Language"), "", /* Content-Length: no body */
		h.Get("Content-MD5"), h.Get("Content-Type"), "" /* Date: x-ms-date is sent */, h.Get("If-Modified-Since"),
		h.Get("If-Match"), h.Get("If-None-Match"), h.Get("If-Unmodified-Since"), h.Get("Range")} {
		b.WriteString(v + "\n")
	}
	for _, k := range xms {
		b.WriteString(k + ":" + strings.Join(h.Values(k), ",") + "\n")
	}
	b.WriteString("/" + account + req.URL.EscapedPath())
	q := req.URL.Query()
	names := slices.Sorted(maps.Keys(q))
	for _, k := range names {
		vals := slices.Sorted(slices.Values(q[k]))
		b.WriteString("\n" + strings.ToLower(k) + ":" + strings.Join(vals, ","))
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(b.String()))
	h.Set("Authorization", "SharedKey "+account+":"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
}

func (s *azureSource) Fetch(ctx context.Context, dest string) error {
	t, err := s.target()
	if err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.blobURL(s.container, s.blobKey).String(), nil)
	if err != nil {
		return fmt.Errorf("build context %s: %s", s, s.redact(err.Error()))
	}
	req.Header.Set("x-ms-version", azureVersion)
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	if t.key != nil {
		signSharedKey(req, t.account, t.key)
	}
	client := s.opts.httpClient()
	resp, err := client.Do(req)
	if err != nil {
		// Transport errors quote the request URL, SAS token included.
		return fmt.Errorf("build context %s: downloading: %s", s, s.redact(unwrapURLError(err).Error()))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s.wrap(resp)
	}
	return extractDownload(ctx, s, resp.Body, resp.ContentLength, dest, s.opts.MaxSize)
}

// redact removes the URL's and the connection string's SAS token from msg.
func (s *azureSource) redact(msg string) string {
	for _, q := range []string{s.url.RawQuery, s.connectionStringSAS()} {
		if q != "" {
			msg = strings.ReplaceAll(msg, q, "REDACTED")
		}
	}
	return msg
}

func (s *azureSource) connectionStringSAS() string {
	if cs := s.opts.Env(EnvAzureConnectionString); cs != "" {
		if t, err := parseAzureConnectionString(cs); err == nil {
			return t.service.RawQuery
		}
	}
	return ""
}

// wrap turns an error response into the package's errors by the service's
// x-ms-error-code, else by the HTTP status.
func (s *azureSource) wrap(resp *http.Response) error {
	hint := fmt.Sprintf("set %s, %s, or put a SAS token in the URL", EnvAzureAccessKey, EnvAzureConnectionString)
	code := resp.Header.Get("x-ms-error-code")
	switch code {
	case "BlobNotFound", "ContainerNotFound", "ResourceNotFound":
		return fmt.Errorf("build context %s: %w: no blob %s in container %s (%s)", s, ErrNotFound, s.blobKey, s.container, code)
	case "AuthenticationFailed", "AuthorizationFailure", "NoAuthenticationInformation", "InsufficientAccountPermissions":
		return fmt.Errorf("build context %s: %w (%s); %s", s, ErrAuth, code, hint)
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("build context %s: %w (HTTP 404)", s, ErrNotFound)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("build context %s: %w (HTTP %d); %s", s, ErrAuth, resp.StatusCode, hint)
	}
	return fmt.Errorf("build context %s: downloading: HTTP %s %s", s, resp.Status, code)
}
