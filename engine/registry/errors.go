package registry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Error is a failed registry operation, told in the user's terms: what was
// being done to which image on which registry, why it failed, and what to do.
type Error struct {
	// Subject is "pulling busybox:1 from 127.0.0.1:5000" or
	// "pushing to 127.0.0.1:5000/app".
	Subject  string
	Registry string
	Reason   string
	Hint     string
	Err      error
}

func (e *Error) Error() string {
	s := e.Subject + ": " + e.Reason
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// explain turns a go-containerregistry error into an *Error. pull selects
// hints that talk about image names rather than push rights.
func (c *Client) explain(subject, registry string, pull bool, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	e := &Error{Subject: subject, Registry: registry, Reason: Redact(err.Error()), Err: err}
	var terr *transport.Error
	// TLS problems come first: for a loopback or private registry
	// go-containerregistry also tries plain HTTP, and that attempt's error
	// ("400 Bad Request" from a TLS port) would hide the real cause.
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case tlsError(err) != nil:
		e.Reason = "TLS certificate not trusted: " + tlsError(err).Error()
		e.Hint = fmt.Sprintf("pass the registry's CA with --registry-certificate %s=ca.pem, or use --skip-tls-verify-registry %s", registry, registry)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") && !c.plainHTTP(registry, !pull):
		e.Reason = "the registry speaks plain HTTP"
		e.Hint = fmt.Sprintf("add --insecure-registry %s", registry)
	case errors.As(err, &terr):
		e.Reason, e.Hint = explainTransport(terr, registry, pull)
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Reason = "connection refused"
		e.Hint = fmt.Sprintf("check that the registry %s is running and reachable", registry)
	}
	return e
}

func explainTransport(terr *transport.Error, registry string, pull bool) (reason, hint string) {
	reason = fmt.Sprintf("%d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
	var code transport.ErrorCode
	if len(terr.Errors) > 0 {
		code = terr.Errors[0].Code
		reason = terr.Errors[0].Message
		if reason == "" {
			reason = string(code)
		}
	}
	switch {
	case code == transport.UnauthorizedErrorCode, code == transport.DeniedErrorCode,
		terr.StatusCode == http.StatusUnauthorized, terr.StatusCode == http.StatusForbidden:
		if code == "" {
			code = transport.UnauthorizedErrorCode
			if terr.StatusCode == http.StatusForbidden {
				code = transport.DeniedErrorCode
			}
		}
		reason = string(code)
		if len(terr.Errors) > 0 && terr.Errors[0].Message != "" {
			reason += " (" + terr.Errors[0].Message + ")"
		}
		hint = credentialsHint(registry)
	case code == transport.ManifestUnknownErrorCode, pull && terr.StatusCode == http.StatusNotFound && code == "":
		hint = "check the image name and tag"
	case code == transport.NameUnknownErrorCode:
		hint = "check the repository name"
	case code == transport.TooManyRequestsErrorCode, terr.StatusCode == http.StatusTooManyRequests:
		hint = "the registry is rate-limiting; retry later or use --registry-mirror"
	case terr.StatusCode >= 500:
		hint = "the registry failed; retry, or raise --push-retry / --image-download-retry"
	}
	return reason, hint
}

func credentialsHint(registry string) string {
	if path := DockerConfigPath(); path != "" {
		return fmt.Sprintf("check the credentials for %s in %s", registry, path)
	}
	return fmt.Sprintf("no docker config.json found ($DOCKER_CONFIG, %s, ~/.docker): add credentials for %s", DefaultKanikoDir+"/.docker", registry)
}

// tlsError returns the certificate verification error within err, if any.
func tlsError(err error) error {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		return unknownCA
	case errors.As(err, &hostErr):
		return hostErr
	case errors.As(err, &invalid):
		return invalid
	}
	return nil
}

// permanent reports errors that another attempt cannot fix.
func permanent(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var platformErr *PlatformError
	if errors.As(err, &platformErr) {
		return true
	}
	if tlsError(err) != nil {
		return true
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode >= 400 && terr.StatusCode < 500 &&
			terr.StatusCode != http.StatusRequestTimeout && terr.StatusCode != http.StatusTooManyRequests
	}
	return false
}

// IsNotFound reports a registry's answer that the manifest, blob or
// repository asked for does not exist, as opposed to a failure to ask.
func IsNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode || d.Code == transport.BlobUnknownErrorCode {
			return true
		}
	}
	return false
}
