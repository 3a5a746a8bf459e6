package harness

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// CloudRequests records what a fake cloud endpoint was asked.
type CloudRequests struct {
	mu sync.Mutex
	// Paths of the metadata server, X-Amz-Target of the ECR endpoint.
	names []string
	auths []string
}

func (c *CloudRequests) add(name, auth string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = append(c.names, name)
	c.auths = append(c.auths, auth)
}

// Names are the request paths (metadata server) or X-Amz-Target headers
// (ECR), in order.
func (c *CloudRequests) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...)
}

// Authorizations are the requests' Authorization headers, in order.
func (c *CloudRequests) Authorizations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.auths...)
}

// GCEMetadata starts a fake GCE metadata server on loopback that gives
// token as the default service account's access token, as Google's
// Application Default Credentials read it. Point GCE_METADATA_HOST at the
// host it returns.
func GCEMetadata(t testing.TB, token string) (host string, seen *CloudRequests) {
	t.Helper()
	seen = &CloudRequests{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.add(r.URL.Path, r.Header.Get("Authorization"))
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "no Metadata-Flavor", http.StatusForbidden)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/service-accounts/default/token"):
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"` + token + `","expires_in":3600,"token_type":"Bearer"}`))
		case strings.HasSuffix(r.URL.Path, "/project/project-id"):
			_, _ = w.Write([]byte("fake-project"))
		default:
			_, _ = w.Write([]byte(""))
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), seen
}

// ECRTokenEndpoint starts a fake ECR API on loopback whose
// GetAuthorizationToken gives AWS:password for registry (a host such as
// 123456789012.dkr.ecr.us-east-1.amazonaws.com) to requests signed with
// accessKey, and refuses others. Point AWS_ENDPOINT_URL (or
// AWS_ENDPOINT_URL_ECR) at the URL it returns.
func ECRTokenEndpoint(t testing.TB, accessKey, registry, password string) (url string, seen *CloudRequests) {
	t.Helper()
	seen = &CloudRequests{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.add(r.Header.Get("X-Amz-Target"), r.Header.Get("Authorization"))
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+accessKey+"/") {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`))
			return
		}
		token := base64.StdEncoding.EncodeToString([]byte("AWS:" + password))
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"authorizationData":[{"authorizationToken":"` + token + `","expiresAt":4102444800,"proxyEndpoint":"https://` + registry + `"}]}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, seen
}
