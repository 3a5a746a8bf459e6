package main

// TestKeylessSigning signs as the release workflow does (KEYLESS=1), end
// to end, against a Sigstore made of fakes on loopback: an OIDC issuer
// that mints GitHub-Actions-like tokens, a Fulcio that checks them and
// issues certificates with an embedded SCT, and a Rekor that logs the
// signatures and returns signed entries with inclusion proofs. It then
// verifies what was signed with the cosign library calls that `cosign
// verify` and `cosign verify-blob` make, trusting only the fakes' keys.
//
// Nothing may reach Sigstore's public instance, its TUF repository or a
// cloud metadata address: every URL and the trusted root are given
// explicitly, the environment is rebuilt from nothing (no SIGSTORE_*, no
// ACTIONS_ID_TOKEN_*, an empty TUF_ROOT and HOME), and the test body runs
// in a network namespace of its own whose only interface is loopback, so
// that a forgotten default fails the test instead of leaving the machine.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-openapi/runtime"
	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	"github.com/google/certificate-transparency-go/x509util"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/fulcio/pkg/api"
	"github.com/sigstore/rekor/pkg/generated/models"
	rekortypes "github.com/sigstore/rekor/pkg/types"
	_ "github.com/sigstore/rekor/pkg/types/hashedrekord/v0.0.1" // the entry kind cosign logs
	"github.com/sigstore/rekor/pkg/util"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/slipway-build/slipway/e2e/harness"
)

// sealedEnv marks the test binary run inside the network namespace.
const sealedEnv = "SUPPLYCHAIN_KEYLESS_SEALED"

const (
	// The identity Fulcio certifies for the release workflow at a tag, as
	// it does for GitHub Actions: the workflow's job_workflow_ref as a URI.
	workflowRef = "slipway-build/slipway/.github/workflows/release.yml@refs/tags/v0.0.0-ci"
	identity    = "https://github.com/" + workflowRef
	// README's `cosign verify` names the identity by this expression.
	identityRegexp = "^https://github.com/slipway-build/slipway/"
)

func TestKeylessSigning(t *testing.T) {
	harness.SkipIfShort(t, "the distribution registry and a network namespace")
	if os.Getenv(sealedEnv) != "1" {
		runSealed(t)
		return
	}
	ctx := context.Background()
	dir := t.TempDir()

	reg := harness.StartRegistry(t)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.ParseReference(reg.Host + "/keyless/app:v0.0.0-ci")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	image := tag.Context().Digest(h.String()).String()

	ss := newFakeSigstore(t)
	tokenFile := filepath.Join(dir, "oidc-token")
	if err := os.WriteFile(tokenFile, []byte(ss.token(t, ss.issuerKey, "sigstore")), 0o600); err != nil {
		t.Fatal(err)
	}
	keyless := []string{"--keyless", "--fulcio-url", ss.fulcio.URL, "--rekor-url", ss.rekor.URL,
		"--oidc-issuer", ss.issuer.URL, "--trusted-root", ss.trustedRoot}

	// The image, with the token given as a file (--identity-token).
	run(t, append(append([]string{"supplychain", "sign"}, keyless...), "--identity-token", tokenFile, "--image", image)...)

	// SHA256SUMS, with the ambient GitHub Actions identity, as release.yml
	// signs: cosign asks the runner's token endpoint (here the fake
	// issuer's) for a token with audience sigstore.
	sums := filepath.Join(dir, "SHA256SUMS")
	if err := os.WriteFile(sums, []byte(strings.Repeat("0", 64)+"  slipway-build-linux-amd64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", ss.issuer.URL+"/actions/token?api-version=2.0")
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", ss.requestToken)
	run(t, append(append([]string{"supplychain", "sign-blob"}, keyless...), "--file", sums)...)
	os.Unsetenv("ACTIONS_ID_TOKEN_REQUEST_URL")
	os.Unsetenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")

	if got := ss.ambientTokens.Load(); got != 1 {
		t.Errorf("the runner's token endpoint was asked %d times, want 1", got)
	}
	if got := ss.certificates.Load(); got != 2 {
		t.Errorf("Fulcio issued %d certificates, want 2", got)
	}
	if got := ss.entries(); got != 2 {
		t.Errorf("Rekor logged %d entries, want 2", got)
	}

	// What `cosign verify --trusted-root … --certificate-identity …
	// --certificate-oidc-issuer …` and `cosign verify-blob --bundle …` run:
	// the certificate must chain to the trusted Fulcio CA and carry a valid
	// SCT, the identity and issuer must match, and the Rekor entry must be
	// signed by the trusted log (no --insecure-ignore-tlog).
	trusted, err := sgroot.NewTrustedRootFromPath(ss.trustedRoot)
	if err != nil {
		t.Fatal(err)
	}
	verifyImage := func(identity, identityRegexp, issuer string) error {
		ref, err := name.ParseReference(image)
		if err != nil {
			return err
		}
		sigs, bundleVerified, err := cosign.VerifyImageSignatures(ctx, ref, &cosign.CheckOpts{
			TrustedMaterial: trusted,
			Identities:      []cosign.Identity{{Subject: identity, SubjectRegExp: identityRegexp, Issuer: issuer}},
			ClaimVerifier:   cosign.SimpleClaimVerifier,
		})
		if err == nil && (len(sigs) != 1 || !bundleVerified) {
			err = fmt.Errorf("%d signatures, Rekor bundle verified %v", len(sigs), bundleVerified)
		}
		return err
	}
	verifyBlob := func(blob, identity, issuer string) error {
		b, err := sgbundle.LoadJSONFromPath(sums + ".sigstore.json")
		if err != nil {
			return err
		}
		content, err := os.ReadFile(blob)
		if err != nil {
			return err
		}
		_, err = cosign.VerifyNewBundle(ctx, &cosign.CheckOpts{
			TrustedMaterial: trusted,
			Identities:      []cosign.Identity{{Subject: identity, Issuer: issuer}},
		}, sgverify.WithArtifact(bytes.NewReader(content)), b)
		return err
	}

	t.Run("cosign verify accepts the image's signature", func(t *testing.T) {
		if err := verifyImage(identity, "", ss.issuer.URL); err != nil {
			t.Errorf("identity %s, issuer %s: %v", identity, ss.issuer.URL, err)
		}
		if err := verifyImage("", identityRegexp, ss.issuer.URL); err != nil {
			t.Errorf("README's --certificate-identity-regexp %s: %v", identityRegexp, err)
		}
	})
	t.Run("cosign verify refuses another identity or issuer", func(t *testing.T) {
		other := "https://github.com/someone-else/slipway/.github/workflows/release.yml@refs/tags/v0.0.0-ci"
		if err := verifyImage(other, "", ss.issuer.URL); err == nil {
			t.Errorf("identity %s verified", other)
		} else {
			t.Logf("another identity: %v", err)
		}
		if err := verifyImage(identity, "", "https://token.actions.githubusercontent.com"); err == nil {
			t.Error("another issuer verified")
		} else {
			t.Logf("another issuer: %v", err)
		}
	})
	t.Run("cosign verify-blob accepts the SHA256SUMS bundle", func(t *testing.T) {
		if err := verifyBlob(sums, identity, ss.issuer.URL); err != nil {
			t.Errorf("%v", err)
		}
		b, err := os.ReadFile(sums + ".sigstore.json")
		if err != nil {
			t.Fatal(err)
		}
		var bundle struct {
			MediaType            string `json:"mediaType"`
			VerificationMaterial struct {
				TlogEntries []struct {
					LogIndex       string          `json:"logIndex"`
					InclusionProof json.RawMessage `json:"inclusionProof"`
				} `json:"tlogEntries"`
			} `json:"verificationMaterial"`
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			t.Fatalf("SHA256SUMS.sigstore.json: %v", err)
		}
		if !strings.HasPrefix(bundle.MediaType, "application/vnd.dev.sigstore.bundle") || len(bundle.VerificationMaterial.TlogEntries) != 1 ||
			len(bundle.VerificationMaterial.TlogEntries[0].InclusionProof) == 0 {
			t.Errorf("SHA256SUMS.sigstore.json is not a Sigstore bundle with a Rekor entry and its inclusion proof: %s", b)
		}
		for _, f := range []string{".sig", ".pem"} {
			if _, err := os.Stat(sums + f); err != nil {
				t.Errorf("SHA256SUMS%s: %v", f, err)
			}
		}
	})
	t.Run("cosign verify-blob refuses a changed blob or another identity", func(t *testing.T) {
		changed := filepath.Join(dir, "SHA256SUMS.changed")
		if err := os.WriteFile(changed, []byte(strings.Repeat("1", 64)+"  slipway-build-linux-amd64\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := verifyBlob(changed, identity, ss.issuer.URL); err == nil {
			t.Error("a changed SHA256SUMS verified")
		} else {
			t.Logf("a changed SHA256SUMS: %v", err)
		}
		if err := verifyBlob(sums, "https://github.com/someone-else/x/.github/workflows/release.yml@refs/tags/v1", ss.issuer.URL); err == nil {
			t.Error("another identity verified")
		} else {
			t.Logf("another identity: %v", err)
		}
	})
	t.Run("Fulcio refuses a token its issuer did not sign", func(t *testing.T) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		forged := filepath.Join(dir, "forged-token")
		if err := os.WriteFile(forged, []byte(ss.token(t, other, "sigstore")), 0o600); err != nil {
			t.Fatal(err)
		}
		before := ss.certificates.Load()
		err = newApp().Run(append(append([]string{"supplychain", "sign"}, keyless...), "--identity-token", forged, "--image", image))
		if err == nil || ss.certificates.Load() != before {
			t.Errorf("signing with a forged token: %v, %d certificates issued", err, ss.certificates.Load()-before)
		} else {
			t.Logf("a forged token: %v", err)
		}
	})
}

// run runs the supplychain command line in this process.
func run(t *testing.T, args ...string) {
	t.Helper()
	if err := newApp().Run(args); err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
}

// runSealed runs TestKeylessSigning again in this test binary, inside a
// new network namespace with loopback up and nothing else, in an
// environment made from nothing.
func runSealed(t *testing.T) {
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (util-linux, iproute2): %v", tool, err)
		}
	}
	home := t.TempDir()
	args := []string{"--net"}
	if os.Geteuid() != 0 {
		args = append([]string{"--user", "--map-root-user"}, args...)
	}
	args = append(args, "--", "sh", "-c", `ip link set lo up && exec "$@"`, "sh",
		os.Args[0], "-test.run=^TestKeylessSigning$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd := exec.Command("unshare", args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + home,
		"TUF_ROOT=" + filepath.Join(home, "sigstore-tuf"), // empty: a TUF fetch would have to go out, and cannot
		"DOCKER_CONFIG=" + filepath.Join(home, "docker"),
		sealedEnv + "=1",
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestKeylessSigning")) {
		t.Fatalf("in a network namespace of its own: %v\n%s", err, out)
	}
	t.Logf("in a network namespace of its own:\n%s", out)
}

// fakeSigstore is an OIDC issuer, a Fulcio and a Rekor on loopback, and
// the trusted_root.json that trusts them alone.
type fakeSigstore struct {
	issuer, fulcio, rekor *httptest.Server
	trustedRoot           string

	issuerKey    *rsa.PrivateKey
	requestToken string // the bearer token of the runner's token endpoint

	caRoot, caIntermediate *x509.Certificate
	caKey                  crypto.Signer
	ctKey, rekorKey        *ecdsa.PrivateKey

	ambientTokens, certificates atomic.Int64
	mu                          sync.Mutex
	leaves                      [][]byte // Rekor's log, as Merkle leaf hashes
}

func newFakeSigstore(t *testing.T) *fakeSigstore {
	t.Helper()
	ss := &fakeSigstore{requestToken: "runner-request-token"}
	var err error
	if ss.issuerKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	// The CA that sigstore-go's tests use: a root and a code-signing
	// intermediate, as Fulcio has.
	root, rootKey, err := ca.GenerateRootCa()
	if err != nil {
		t.Fatal(err)
	}
	ss.caRoot = root
	if ss.caIntermediate, ss.caKey, err = ca.GenerateFulcioIntermediate(root, rootKey); err != nil {
		t.Fatal(err)
	}
	if ss.ctKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if ss.rekorKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}

	ss.issuer = httptest.NewServer(http.HandlerFunc(ss.serveIssuer))
	t.Cleanup(ss.issuer.Close)
	ss.fulcio = httptest.NewServer(http.HandlerFunc(ss.serveFulcio))
	t.Cleanup(ss.fulcio.Close)
	ss.rekor = httptest.NewServer(http.HandlerFunc(ss.serveRekor))
	t.Cleanup(ss.rekor.Close)
	for _, s := range []*httptest.Server{ss.issuer, ss.fulcio, ss.rekor} {
		if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
			t.Fatalf("a fake listens on %s, not loopback", s.URL)
		}
	}

	now := time.Now()
	tlog := func(u string, key *ecdsa.PrivateKey) map[string]*sgroot.TransparencyLog {
		id := logID(t, &key.PublicKey)
		return map[string]*sgroot.TransparencyLog{hex.EncodeToString(id): {
			BaseURL: u, ID: id, HashFunc: crypto.SHA256, SignatureHashFunc: crypto.SHA256, PublicKey: &key.PublicKey,
			ValidityPeriodStart: now.Add(-time.Hour), ValidityPeriodEnd: now.Add(time.Hour),
		}}
	}
	tr, err := sgroot.NewTrustedRoot(sgroot.TrustedRootMediaType01,
		[]sgroot.CertificateAuthority{&sgroot.FulcioCertificateAuthority{
			Root: root, Intermediates: []*x509.Certificate{ss.caIntermediate}, URI: ss.fulcio.URL,
			ValidityPeriodStart: now.Add(-time.Hour), ValidityPeriodEnd: now.Add(time.Hour),
		}},
		tlog("http://ctfe.fake", ss.ctKey), nil, tlog(ss.rekor.URL, ss.rekorKey))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	ss.trustedRoot = filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(ss.trustedRoot, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ss
}

// logID is a log's id: the SHA-256 of its public key's DER.
func logID(t *testing.T, pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(der)
	return h[:]
}

// token is an ID token as GitHub Actions mints one for the release
// workflow at the tag, signed with key (RS256, as GitHub signs).
func (ss *fakeSigstore) token(t testing.TB, key *rsa.PrivateKey, audience string) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "fake-issuer"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(map[string]any{
		"iss": ss.issuer.URL, "aud": audience,
		"sub": "repo:slipway-build/slipway:ref:refs/tags/v0.0.0-ci",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"repository":       "slipway-build/slipway",
		"ref":              "refs/tags/v0.0.0-ci",
		"event_name":       "push",
		"workflow":         "release",
		"job_workflow_ref": workflowRef,
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// serveIssuer is the OIDC issuer (discovery and keys), and the Actions
// runner's token endpoint that cosign's GitHub provider asks.
func (ss *fakeSigstore) serveIssuer(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer": ss.issuer.URL, "jwks_uri": ss.issuer.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public", "pairwise"},
		})
	case "/jwks":
		writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key: &ss.issuerKey.PublicKey, KeyID: "fake-issuer", Algorithm: string(jose.RS256), Use: "sig",
		}}})
	case "/actions/token":
		if r.Header.Get("Authorization") != "bearer "+ss.requestToken {
			http.Error(w, "bad request token", http.StatusUnauthorized)
			return
		}
		ss.ambientTokens.Add(1)
		writeJSON(w, http.StatusOK, map[string]string{"value": ss.token(panicTB{}, ss.issuerKey, r.URL.Query().Get("audience"))})
	default:
		http.NotFound(w, r)
	}
}

// serveFulcio is Fulcio's /api/v1/signingCert, the endpoint cosign's
// client calls: it verifies the token with the issuer (discovery, JWKS,
// audience sigstore, expiry), checks the proof of possession (the
// token's subject signed with the key to certify), and issues a
// 10-minute certificate from the test CA: the workflow's URI as its SAN,
// the issuer in Fulcio's extensions, and an SCT from the test CT log
// embedded, as Fulcio embeds the one its CT log returns.
func (ss *fakeSigstore) serveFulcio(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/signingCert" {
		http.NotFound(w, r)
		return
	}
	provider, err := oidc.NewProvider(r.Context(), ss.issuer.URL)
	if err != nil {
		http.Error(w, "OIDC discovery: "+err.Error(), http.StatusInternalServerError)
		return
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: "sigstore"}).Verify(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	if err != nil {
		http.Error(w, "the identity token does not verify: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var claims struct {
		JobWorkflowRef string `json:"job_workflow_ref"`
	}
	if err := idt.Claims(&claims); err != nil || claims.JobWorkflowRef == "" {
		http.Error(w, "no job_workflow_ref claim", http.StatusBadRequest)
		return
	}
	var req api.CertificateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(req.PublicKey.Content)
	if err != nil {
		http.Error(w, "public key: "+err.Error(), http.StatusBadRequest)
		return
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := v.VerifySignature(bytes.NewReader(req.SignedEmailAddress), strings.NewReader(idt.Subject)); err != nil {
		http.Error(w, "no proof of possession of the key: "+err.Error(), http.StatusBadRequest)
		return
	}
	leaf, err := ss.issue(pub, "https://github.com/"+claims.JobWorkflowRef, idt.Issuer)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ss.certificates.Add(1)
	chain, err := cryptoutils.MarshalCertificatesToPEM([]*x509.Certificate{leaf, ss.caIntermediate, ss.caRoot})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(chain)
}

var (
	oidIssuer    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1} // Fulcio's issuer extension (raw string)
	oidIssuerV2  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8} // and its DER UTF8String successor
	oidSCTList   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
	serialNumber atomic.Int64
)

func (ss *fakeSigstore) issue(pub crypto.PublicKey, san, issuer string) (*x509.Certificate, error) {
	u, err := url.Parse(san)
	if err != nil {
		return nil, err
	}
	issuerV2, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serialNumber.Add(1)),
		NotBefore:    now, NotAfter: now.Add(10 * time.Minute),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		URIs:        []*url.URL{u},
		ExtraExtensions: []pkix.Extension{
			{Id: oidIssuer, Value: []byte(issuer)},
			{Id: oidIssuerV2, Value: issuerV2},
		},
	}
	// The precertificate's TBS is the certificate's without the SCT list:
	// the CT log signs that, with the issuer's key hash.
	preDER, err := x509.CreateCertificate(rand.Reader, tmpl, ss.caIntermediate, pub, ss.caKey)
	if err != nil {
		return nil, err
	}
	pre, err := x509.ParseCertificate(preDER)
	if err != nil {
		return nil, err
	}
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, Timestamp: uint64(now.UnixMilli())}
	der, err := x509.MarshalPKIXPublicKey(&ss.ctKey.PublicKey)
	if err != nil {
		return nil, err
	}
	sct.LogID.KeyID = sha256.Sum256(der)
	input, err := ct.SerializeSCTSignatureInput(sct, ct.LogEntry{Leaf: ct.MerkleTreeLeaf{
		Version: ct.V1, LeafType: ct.TimestampedEntryLeafType,
		TimestampedEntry: &ct.TimestampedEntry{
			Timestamp: sct.Timestamp, EntryType: ct.PrecertLogEntryType,
			PrecertEntry: &ct.PreCert{IssuerKeyHash: sha256.Sum256(ss.caIntermediate.RawSubjectPublicKeyInfo), TBSCertificate: pre.RawTBSCertificate},
		},
	}})
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(input)
	sig, err := ecdsa.SignASN1(rand.Reader, ss.ctKey, digest[:])
	if err != nil {
		return nil, err
	}
	sct.Signature = ct.DigitallySigned{
		Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA}, Signature: sig,
	}
	list, err := x509util.MarshalSCTsIntoSCTList([]*ct.SignedCertificateTimestamp{&sct})
	if err != nil {
		return nil, err
	}
	listBytes, err := cttls.Marshal(*list)
	if err != nil {
		return nil, err
	}
	ext, err := asn1.Marshal(listBytes)
	if err != nil {
		return nil, err
	}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidSCTList, Value: ext})
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, ss.caIntermediate, pub, ss.caKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(certDER)
}

// serveRekor is Rekor's POST /api/v1/log/entries: it validates the
// proposed entry as Rekor does (the signature must verify with the key or
// certificate in it), canonicalizes it, appends it to the log and returns
// the entry with its SignedEntryTimestamp (the log's signature over the
// canonical JSON of body, integratedTime, logIndex and logID) and an
// inclusion proof against a signed checkpoint.
func (ss *fakeSigstore) serveRekor(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/log/entries" {
		http.NotFound(w, r)
		return
	}
	pe, err := models.UnmarshalProposedEntry(r.Body, runtime.JSONConsumer())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	entry, err := rekortypes.UnmarshalEntry(pe)
	if err != nil {
		http.Error(w, "the entry does not validate: "+err.Error(), http.StatusBadRequest)
		return
	}
	body, err := rekortypes.CanonicalizeEntry(r.Context(), entry)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(body)
	ss.mu.Lock()
	ss.leaves = append(ss.leaves, leaf)
	leaves := append([][]byte(nil), ss.leaves...)
	ss.mu.Unlock()
	index, size := int64(len(leaves)-1), int64(len(leaves))

	signer, err := signature.LoadECDSASignerVerifier(ss.rekorKey, crypto.SHA256)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	der, err := x509.MarshalPKIXPublicKey(&ss.rekorKey.PublicKey)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	id := sha256.Sum256(der)
	logIDHex := hex.EncodeToString(id[:])
	integrated := time.Now().Unix()
	payload, err := json.Marshal(cbundle.RekorPayload{
		Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: integrated, LogIndex: index, LogID: logIDHex,
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	canonical, err := jsoncanonicalizer.Transform(payload)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	set, err := signer.SignMessage(bytes.NewReader(canonical))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rootHash := merkleRoot(leaves)
	checkpoint, err := util.CreateAndSignCheckpoint(r.Context(), "rekor.fake", 1, uint64(size), rootHash, signer)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var hashes []string
	for _, h := range inclusionPath(int(index), leaves) {
		hashes = append(hashes, hex.EncodeToString(h))
	}
	if hashes == nil {
		hashes = []string{}
	}
	rootHex, cp := hex.EncodeToString(rootHash), string(checkpoint)
	uuid := hex.EncodeToString(leaf)
	w.Header().Set("Location", "/api/v1/log/entries/"+uuid)
	writeJSON(w, http.StatusCreated, models.LogEntry{uuid: models.LogEntryAnon{
		Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: &integrated, LogIndex: &index, LogID: &logIDHex,
		Verification: &models.LogEntryAnonVerification{
			SignedEntryTimestamp: set,
			InclusionProof: &models.InclusionProof{
				LogIndex: &index, TreeSize: &size, RootHash: &rootHex, Hashes: hashes, Checkpoint: &cp,
			},
		},
	}})
}

func (ss *fakeSigstore) entries() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.leaves)
}

// merkleRoot is RFC 6962's MTH over the leaf hashes.
func merkleRoot(leaves [][]byte) []byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := split(len(leaves))
	return rfc6962.DefaultHasher.HashChildren(merkleRoot(leaves[:k]), merkleRoot(leaves[k:]))
}

// inclusionPath is RFC 6962's PATH(m, D[n]), leaf to root.
func inclusionPath(m int, leaves [][]byte) [][]byte {
	if len(leaves) == 1 {
		return nil
	}
	k := split(len(leaves))
	if m < k {
		return append(inclusionPath(m, leaves[:k]), merkleRoot(leaves[k:]))
	}
	return append(inclusionPath(m-k, leaves[k:]), merkleRoot(leaves[:k]))
}

// split is the largest power of two smaller than n.
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// panicTB is the testing.TB of a handler, where t.Fatal cannot be called.
type panicTB struct{ testing.TB }

func (panicTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
