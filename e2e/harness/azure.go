package harness

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// azureADHost is the public cloud's Azure AD endpoint, the one the ACR
// helper asks for a service principal's token unless told otherwise.
const azureADHost = "login.microsoftonline.com"

// AzureCloud is a fake Azure AD and ACR token exchange on loopback, for the
// docker-credential-acr-env helper, whose SDK takes the real host names
// from the public cloud's settings. It is reached through HTTPSProxy, an
// HTTP CONNECT proxy that lets through only the two fake hosts, and both
// are served over TLS with a certificate that CA vouches for: run the
// helper with HTTPS_PROXY=HTTPSProxy and SSL_CERT_FILE=CA, and no request
// leaves the machine.
type AzureCloud struct {
	HTTPSProxy string
	CA         string
	// Seen holds "host path" of each request, and the bearer or client
	// credential it carried.
	Seen *CloudRequests
	// Tunnels are the hosts the proxy was asked to reach, allowed or not.
	Tunnels *CloudRequests
}

// StartAzureCloud starts the fakes. Azure AD gives a token to the service
// principal clientID/clientSecret of tenant (client-credentials grant),
// and the ACR registry exchanges that token for refreshToken.
func StartAzureCloud(t testing.TB, tenant, clientID, clientSecret, registry, refreshToken string) *AzureCloud {
	t.Helper()
	const aadToken = "fake-aad-access-token"
	ca, certPath, keyPath := generateCerts(t, t.TempDir(), azureADHost, registry)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	c := &AzureCloud{CA: ca, Seen: &CloudRequests{}, Tunnels: &CloudRequests{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		host := strings.Split(r.Host, ":")[0]
		switch {
		case host == azureADHost && r.Method == http.MethodPost && r.URL.Path == "/"+tenant+"/oauth2/token":
			c.Seen.add(host+" "+r.URL.Path, r.PostForm.Get("client_id")+":"+r.PostForm.Get("client_secret"))
			if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != clientID || r.PostForm.Get("client_secret") != clientSecret {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`))
				return
			}
			expires := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
			writeJSON(w, map[string]string{
				"token_type": "Bearer", "access_token": aadToken, "expires_in": "3600",
				"expires_on": expires, "not_before": expires, "resource": r.PostForm.Get("resource"),
			})
		case host == registry && r.Method == http.MethodPost && r.URL.Path == "/oauth2/exchange":
			c.Seen.add(host+" "+r.URL.Path, r.PostForm.Get("access_token"))
			if r.PostForm.Get("grant_type") != "access_token" || r.PostForm.Get("service") != registry ||
				r.PostForm.Get("tenant") != tenant || r.PostForm.Get("access_token") != aadToken {
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
				return
			}
			writeJSON(w, map[string]string{"refresh_token": refreshToken})
		default:
			c.Seen.add(host+" "+r.URL.Path, "")
			http.NotFound(w, r)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	allowed := map[string]bool{azureADHost + ":443": true, registry + ":443": true}
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	target := srv.Listener.Addr().String()
	go func() {
		for {
			conn, err := proxy.Accept()
			if err != nil {
				return
			}
			go c.tunnel(conn, allowed, target)
		}
	}()
	c.HTTPSProxy = "http://" + proxy.Addr().String()
	return c
}

// tunnel answers one CONNECT: to an allowed host it joins the client to
// the fake server, whatever the host's real address; anything else is
// refused, never dialled.
func (c *AzureCloud) tunnel(conn net.Conn, allowed map[string]bool, target string) {
	defer func() { _ = conn.Close() }()
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		return
	}
	c.Tunnels.add(req.Host, "")
	if req.Method != http.MethodConnect || !allowed[req.Host] {
		_, _ = io.WriteString(conn, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	upstream, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = io.WriteString(conn, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer func() { _ = upstream.Close() }()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, upstream); done <- struct{}{} }()
	<-done
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
