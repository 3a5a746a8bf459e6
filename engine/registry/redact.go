package registry

import (
	"net/url"
	"regexp"
	"strings"
)

// urlPattern finds the URLs that net/http and go-containerregistry put into
// their error messages, unquoted or in quotes.
var urlPattern = regexp.MustCompile(`https?://[^\s"'<>]+`)

// protocolParams are the query parameters the distribution protocol itself
// sends, which say nothing secret. Every other value is redacted: upload
// locations carry the registry's session token (`_state=`), and redirects
// to blob storage carry signatures.
var protocolParams = map[string]bool{"scope": true, "service": true, "mount": true, "from": true, "digest": true, "n": true, "last": true}

// Redact replaces, in every URL within s, the values of query parameters
// other than the protocol's own with "REDACTED", and drops any password,
// so that an error or warning can be shown as it is. Retry warnings, errors
// and the steps' last error line all pass through it.
func Redact(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlPattern.ReplaceAllStringFunc(s, func(match string) string {
		// "GET https://host/path: EOF": the colon ends the sentence.
		raw := strings.TrimRight(match, ".,:;)]")
		return redactURL(raw) + match[len(raw):]
	})
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	changed := false
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
		changed = true
	}
	if u.RawQuery != "" {
		// Kept in order, values replaced one by one.
		pairs := strings.Split(u.RawQuery, "&")
		for i, pair := range pairs {
			key, _, hasValue := strings.Cut(pair, "=")
			if k, err := url.QueryUnescape(key); hasValue && (err != nil || !protocolParams[k]) {
				pairs[i] = key + "=REDACTED"
				changed = true
			}
		}
		u.RawQuery = strings.Join(pairs, "&")
	}
	if !changed {
		return raw
	}
	return u.String()
}
