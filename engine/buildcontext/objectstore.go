package buildcontext

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// Environment variables read for object storage, besides each SDK's own
// credential chain (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, …).
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

func tooLarge(src fmt.Stringer, size, max int64) error {
	return fmt.Errorf("build context %s: %w: the object is %s bytes, over the %d-byte limit", src, ErrTooLarge, strconv.FormatInt(size, 10), max)
}

// s3Source is s3://BUCKET/KEY, a tarball read with aws-sdk-go-v2 and its
// default credential chain.
type s3Source struct {
	bucket, key string
	opts        Options
}

func newS3Source(contextURL string, opts Options) (*s3Source, error) {
	b, k, err := splitBucketURL(contextURL, "s3")
	if err != nil {
		return nil, err
	}
	return &s3Source{bucket: b, key: k, opts: opts}, nil
}

func (s *s3Source) String() string { return "s3://" + s.bucket + "/" + s.key }

func (s *s3Source) client(ctx context.Context) (*s3.Client, error) {
	var loadOpts []func(*awsconfig.LoadOptions) error
	if s.opts.HTTPClient != nil {
		loadOpts = append(loadOpts, awsconfig.WithHTTPClient(s.opts.HTTPClient))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("build context %s: loading AWS configuration: %w", s, err)
	}
	if cfg.Region == "" {
		// S3 needs a region to sign; any region finds the bucket through
		// redirects, and S3-compatible servers ignore it.
		cfg.Region = "us-east-1"
	}
	endpoint := s.opts.Env(EnvS3Endpoint)
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	pathStyle := false
	if v := s.opts.Env(EnvS3ForcePathStyle); v != "" {
		if pathStyle, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("build context %s: %s=%q is not true or false", s, EnvS3ForcePathStyle, v)
		}
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		// Only validate checksums the server sends: S3-compatible
		// servers often send none, and the tar checks its own framing.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

func (s *s3Source) Fetch(ctx context.Context, dest string) error {
	c, err := s.client(ctx)
	if err != nil {
		return err
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key)})
	if err != nil {
		return s.wrap(err)
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength > s.opts.MaxSize {
		return tooLarge(s, *out.ContentLength, s.opts.MaxSize)
	}
	if err := Extract(ctx, out.Body, dest, s.opts.MaxSize); err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	return nil
}

func (s *s3Source) wrap(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("build context %s: %w: no object %s in bucket %s", s, ErrNotFound, s.key, s.bucket)
		case "NoSuchBucket":
			return fmt.Errorf("build context %s: %w: no bucket %s", s, ErrNotFound, s.bucket)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "ExpiredToken", "InvalidToken":
			return fmt.Errorf("build context %s: %w: %s: %s; check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, the pod's IAM role)", s, ErrAuth, apiErr.ErrorCode(), apiErr.ErrorMessage())
		}
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "get credentials") {
		return fmt.Errorf("build context %s: %w: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the pod an IAM role): %v", s, ErrAuth, err)
	}
	return fmt.Errorf("build context %s: downloading: %w", s, err)
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
	client := s.opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
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
	if size > s.opts.MaxSize {
		return tooLarge(s, size, s.opts.MaxSize)
	}
	if err := Extract(ctx, resp.Body, dest, s.opts.MaxSize); err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	return nil
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
// tarball read with azblob. Credentials, first found wins: a connection
// string, the account key (kaniko's AZURE_STORAGE_ACCESS_KEY), a SAS token
// in the URL's query, else anonymous access to a public container.
type azureSource struct {
	url                *url.URL
	account            string
	container, blobKey string
	opts               Options
}

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

func (s *azureSource) client() (*azblob.Client, error) {
	copts := &azblob.ClientOptions{}
	if s.opts.HTTPClient != nil {
		copts.Transport = s.opts.HTTPClient
	}
	if cs := s.opts.Env(EnvAzureConnectionString); cs != "" {
		return azblob.NewClientFromConnectionString(cs, copts)
	}
	service := s.url.Scheme + "://" + s.url.Host + "/"
	if key := s.opts.Env(EnvAzureAccessKey); key != "" {
		cred, err := azblob.NewSharedKeyCredential(s.account, key)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not a valid account key: %v", ErrAuth, EnvAzureAccessKey, err)
		}
		return azblob.NewClientWithSharedKeyCredential(service, cred, copts)
	}
	if s.url.RawQuery != "" {
		return azblob.NewClientWithNoCredential(service+"?"+s.url.RawQuery, copts)
	}
	return azblob.NewClientWithNoCredential(service, copts)
}

func (s *azureSource) Fetch(ctx context.Context, dest string) error {
	c, err := s.client()
	if err != nil {
		return fmt.Errorf("build context %s: making an Azure Blob client: %w", s, err)
	}
	resp, err := c.DownloadStream(ctx, s.container, s.blobKey, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != nil && *resp.ContentLength > s.opts.MaxSize {
		return tooLarge(s, *resp.ContentLength, s.opts.MaxSize)
	}
	var body io.Reader = resp.Body
	if err := Extract(ctx, body, dest, s.opts.MaxSize); err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	return nil
}

func (s *azureSource) wrap(err error) error {
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound):
		return fmt.Errorf("build context %s: %w: no blob %s in container %s", s, ErrNotFound, s.blobKey, s.container)
	case bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure, bloberror.NoAuthenticationInformation, bloberror.InsufficientAccountPermissions):
		return fmt.Errorf("build context %s: %w; set %s, %s, or put a SAS token in the URL", s, ErrAuth, EnvAzureAccessKey, EnvAzureConnectionString)
	}
	var rerr *azcore.ResponseError
	if errors.As(err, &rerr) {
		switch rerr.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("build context %s: %w (HTTP 404)", s, ErrNotFound)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("build context %s: %w (HTTP %d); set %s, %s, or put a SAS token in the URL", s, ErrAuth, rerr.StatusCode, EnvAzureAccessKey, EnvAzureConnectionString)
		}
		return fmt.Errorf("build context %s: downloading: %w", s, err)
	}
	// Transport errors quote the request URL, SAS token included.
	msg := unwrapURLError(err).Error()
	if q := s.url.RawQuery; q != "" {
		msg = strings.ReplaceAll(msg, q, "REDACTED")
	}
	return fmt.Errorf("build context %s: downloading: %s", s, msg)
}
