package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
)

// GitOptions is kaniko's --git flag.
type GitOptions struct {
	// Branch is checked out when the URL names no ref. It may be a
	// branch or a tag.
	Branch string
	// SingleBranch fetches only the ref being built.
	SingleBranch bool
	// RecurseSubmodules checks out submodules, recursively.
	RecurseSubmodules bool
	// InsecureSkipTLS skips TLS verification for https remotes.
	InsecureSkipTLS bool
	// Depth makes a shallow clone of that many commits; 0 is the full history.
	Depth int
}

// ParseGitOptions parses kaniko's --git value:
// "branch=NAME,single-branch=BOOL,recurse-submodules=BOOL,insecure-skip-tls=BOOL,depth=N".
// Keys may be given in any order and any may be left out.
func ParseGitOptions(s string) (GitOptions, error) {
	var o GitOptions
	if strings.TrimSpace(s) == "" {
		return o, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return GitOptions{}, fmt.Errorf("--git %q: %q is not key=value", s, kv)
		}
		var err error
		switch k {
		case "branch":
			o.Branch = v
		case "single-branch":
			o.SingleBranch, err = strconv.ParseBool(v)
		case "recurse-submodules":
			o.RecurseSubmodules, err = strconv.ParseBool(v)
		case "insecure-skip-tls":
			o.InsecureSkipTLS, err = strconv.ParseBool(v)
		case "depth":
			o.Depth, err = strconv.Atoi(v)
			if err == nil && o.Depth < 0 {
				err = errors.New("must not be negative")
			}
		default:
			return GitOptions{}, fmt.Errorf("--git %q: unknown key %q; known keys are branch, single-branch, recurse-submodules, insecure-skip-tls, depth", s, k)
		}
		if err != nil {
			return GitOptions{}, fmt.Errorf("--git %q: bad value for %s: %v", s, k, err)
		}
	}
	return o, nil
}

// Environment variables read for git contexts.
const (
	// EnvGitUsername and EnvGitPassword are sent as basic auth to http(s)
	// remotes. EnvGitToken alone is sent as the user name with an empty
	// password, as kaniko does (GitHub accepts that); with EnvGitUsername
	// it is the password (GitLab's "oauth2", GitHub's "x-access-token").
	EnvGitUsername = "GIT_USERNAME"
	EnvGitPassword = "GIT_PASSWORD"
	EnvGitToken    = "GIT_TOKEN"
	// EnvGitPullMethod is kaniko's: the protocol used for git:// contexts,
	// "https" (the default, as in kaniko) or "http"; Slipway adds "git" for
	// the native git protocol (git daemon).
	EnvGitPullMethod = "GIT_PULL_METHOD"
	// EnvGitSSHKey is the path of a mounted private key for ssh:// and
	// git@ remotes; without it ~/.ssh/id_ed25519, id_ecdsa and id_rsa are
	// tried. EnvGitSSHKeyPassphrase unlocks it.
	EnvGitSSHKey           = "GIT_SSH_KEY"
	EnvGitSSHKeyPassphrase = "GIT_SSH_KEY_PASSPHRASE"
	// EnvGitSSHKnownHosts is the path of a known_hosts file; without it
	// SSH_KNOWN_HOSTS, ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts are
	// used. Host keys are always checked.
	EnvGitSSHKnownHosts = "GIT_SSH_KNOWN_HOSTS"
	// EnvGitCAInfo is git's own variable: a PEM file of CAs trusted for
	// https remotes.
	EnvGitCAInfo = "GIT_SSL_CAINFO"
)

// scpURL matches git's scp-like syntax, user@host:path.
var scpURL = regexp.MustCompile(`^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^/]`)

func isSCPGitURL(s string) bool {
	return !strings.Contains(s, "://") && scpURL.MatchString(s)
}

func pullMethod(env func(string) string) string {
	switch m := strings.ToLower(env(EnvGitPullMethod)); m {
	case "http", "git":
		return m
	default:
		return "https"
	}
}

// gitSource clones a repository with go-git. The URL's fragment is
// #REF[#COMMIT], kaniko's syntax; REF is a branch, a tag, a full ref such
// as refs/pull/42/head, or a commit. BuildKit's "#REF:DIR" is accepted too
// and makes DIR the context root.
type gitSource struct {
	display  string
	repoURL  string // no credentials, no fragment
	user, pw string // from the URL's userinfo, for http(s)
	ref      string
	commit   string
	dir      string
	ssh      bool
	opts     Options
}

func newGitSource(orig, cloneURL string, opts Options) (*gitSource, error) {
	s := &gitSource{display: redactURL(orig), opts: opts}
	if m := strings.ToLower(opts.Env(EnvGitPullMethod)); m != "" && m != "http" && m != "https" && m != "git" {
		return nil, fmt.Errorf("build context %s: %s=%q: use https, http or git", s.display, EnvGitPullMethod, m)
	}
	base, frag, _ := strings.Cut(cloneURL, "#")
	if frag != "" {
		parts := strings.SplitN(frag, "#", 2)
		last := &parts[len(parts)-1]
		if r, d, ok := strings.Cut(*last, ":"); ok {
			*last, s.dir = r, d
		}
		s.ref = parts[0]
		if len(parts) == 2 {
			s.commit = parts[1]
		}
	}
	if isSCPGitURL(base) {
		s.ssh = true
		s.repoURL = base
		return s, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", s.display, err)
	}
	switch u.Scheme {
	case "ssh":
		s.ssh = true
	case "http", "https":
		if u.User != nil {
			// Keep credentials out of the URL so that they never land in
			// the context's .git/config, where COPY . . would find them.
			s.user = u.User.Username()
			s.pw, _ = u.User.Password()
			u.User = nil
		}
	}
	s.repoURL = u.String()
	return s, nil
}

func (s *gitSource) String() string { return s.display }
func (s *gitSource) subDir() string { return s.dir }

func (s *gitSource) auth() (transport.AuthMethod, error) {
	env := s.opts.Env
	if s.ssh {
		return s.sshAuth()
	}
	if !strings.HasPrefix(s.repoURL, "http") {
		return nil, nil
	}
	user, pw := s.user, s.pw
	if user == "" && pw == "" {
		user, pw = env(EnvGitUsername), env(EnvGitPassword)
		if tok := env(EnvGitToken); tok != "" {
			if user == "" {
				user, pw = tok, ""
			} else {
				pw = tok
			}
		}
	}
	if user == "" && pw == "" {
		return nil, nil
	}
	return &githttp.BasicAuth{Username: user, Password: pw}, nil
}

func (s *gitSource) sshAuth() (transport.AuthMethod, error) {
	env := s.opts.Env
	user := "git"
	if isSCPGitURL(s.repoURL) {
		user, _, _ = strings.Cut(s.repoURL, "@")
	} else if u, err := url.Parse(s.repoURL); err == nil && u.User != nil {
		user = u.User.Username()
	}
	keyPath := env(EnvGitSSHKey)
	if keyPath == "" {
		home, _ := os.UserHomeDir()
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			p := filepath.Join(home, ".ssh", name)
			if _, err := os.Stat(p); err == nil {
				keyPath = p
				break
			}
		}
	}
	if keyPath == "" {
		return nil, fmt.Errorf("build context %s: %w: no SSH key; mount one and set %s to its path", s, ErrAuth, EnvGitSSHKey)
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, keyPath, env(EnvGitSSHKeyPassphrase))
	if err != nil {
		return nil, fmt.Errorf("build context %s: reading the SSH key %s (%s): %w", s, keyPath, EnvGitSSHKey, err)
	}
	var files []string
	if kh := env(EnvGitSSHKnownHosts); kh != "" {
		files = append(files, kh)
	}
	cb, err := gitssh.NewKnownHostsCallback(files...)
	if err != nil {
		return nil, fmt.Errorf("build context %s: no usable known_hosts (set %s to a known_hosts file with the server's host key): %w", s, EnvGitSSHKnownHosts, err)
	}
	keys.HostKeyCallback = cb
	return keys, nil
}

func (s *gitSource) caBundle() ([]byte, error) {
	p := s.opts.Env(EnvGitCAInfo)
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("build context %s: reading %s=%s: %w", s, EnvGitCAInfo, p, err)
	}
	return b, nil
}

func (s *gitSource) Fetch(ctx context.Context, dest string) error {
	auth, err := s.auth()
	if err != nil {
		return err
	}
	ca, err := s.caBundle()
	if err != nil {
		return err
	}
	g := s.opts.Git

	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{s.repoURL}})
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth, InsecureSkipTLS: g.InsecureSkipTLS, CABundle: ca})
	if err != nil {
		return s.wrap("listing the remote's refs", err)
	}
	name, commit, err := s.resolve(refs)
	if err != nil {
		return err
	}

	clone := &git.CloneOptions{
		URL:             s.repoURL,
		Auth:            auth,
		SingleBranch:    g.SingleBranch,
		Depth:           g.Depth,
		InsecureSkipTLS: g.InsecureSkipTLS,
		CABundle:        ca,
		NoCheckout:      true,
	}
	if g.Depth > 0 {
		// Following tags would fetch the history the depth cut off.
		clone.Tags = git.NoTags
	}
	custom := name != "" && !name.IsBranch() && !name.IsTag()
	if !custom {
		clone.ReferenceName = name
	}
	repo, err := git.PlainCloneContext(ctx, dest, false, clone)
	if err != nil {
		return s.wrap("cloning", err)
	}
	fetch := func(spec string) error {
		err := repo.FetchContext(ctx, &git.FetchOptions{
			RefSpecs:        []config.RefSpec{config.RefSpec(spec)},
			Depth:           g.Depth,
			Auth:            auth,
			InsecureSkipTLS: g.InsecureSkipTLS,
			CABundle:        ca,
			Tags:            git.NoTags,
		})
		if errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil
		}
		return err
	}
	if custom {
		// Refs outside heads and tags (pull requests, Gerrit changes) are
		// not cloned by default: fetch that one ref by name.
		if err := fetch("+" + name.String() + ":" + name.String()); err != nil {
			return s.wrap("fetching "+name.String(), err)
		}
	}

	var target plumbing.Hash
	if commit != "" {
		h, err := repo.ResolveRevision(plumbing.Revision(commit))
		if err != nil && plumbing.IsHash(commit) {
			// Not in the cloned history (a shallow clone, or a commit on
			// no branch): ask for it by hash, which most servers allow.
			if ferr := fetch(commit + ":refs/slipway/commit"); ferr == nil {
				h, err = repo.ResolveRevision(plumbing.Revision(commit))
			}
		}
		if err != nil {
			hint := ""
			if g.Depth > 0 {
				hint = fmt.Sprintf("; with depth=%d it may be older than the fetched history", g.Depth)
			}
			return fmt.Errorf("build context %s: %w: commit %s not found%s", s, ErrBadRef, commit, hint)
		}
		target = *h
	} else {
		rev := plumbing.Revision(plumbing.HEAD)
		if name != "" {
			rev = plumbing.Revision(name)
		}
		h, err := repo.ResolveRevision(rev)
		if err != nil {
			return fmt.Errorf("build context %s: %w: %s was not fetched: %v", s, ErrBadRef, rev, err)
		}
		target = *h
	}

	wt, err := repo.Worktree()
	if err != nil {
		return s.wrap("opening the worktree", err)
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: target, Force: true}); err != nil {
		return s.wrap("checking out "+target.String(), err)
	}
	if g.RecurseSubmodules {
		subs, err := wt.Submodules()
		if err != nil {
			return s.wrap("reading .gitmodules", err)
		}
		if err := subs.UpdateContext(ctx, &git.SubmoduleUpdateOptions{
			Init:              true,
			RecurseSubmodules: git.DefaultSubmoduleRecursionDepth,
			Auth:              auth,
			Depth:             g.Depth,
		}); err != nil {
			return s.wrap("updating submodules", err)
		}
	}
	// go-git gives no hook to stop a clone at a size, so the cap is
	// checked once the tree is on disk: a huge repository is refused
	// before the build reads it, though its bytes were already fetched.
	if over, err := largerThan(dest, s.opts.MaxSize); err != nil {
		return fmt.Errorf("build context %s: measuring the clone: %w", s, err)
	} else if over {
		return fmt.Errorf("build context %s: %w: the clone (with .git) is over the %d-byte limit; try --git depth=1", s, ErrTooLarge, s.opts.MaxSize)
	}
	return nil
}

// largerThan reports whether the regular files under root add up to more
// than limit bytes, stopping as soon as they do.
func largerThan(root string, limit int64) (bool, error) {
	var total int64
	errOver := errors.New("over")
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if total += fi.Size(); total > limit {
				return errOver
			}
		}
		return nil
	})
	if errors.Is(err, errOver) {
		return true, nil
	}
	return false, err
}

// resolve turns the URL's ref (or --git branch=) into the ref to clone and
// the commit to check out. An empty name means the remote's HEAD.
func (s *gitSource) resolve(refs []*plumbing.Reference) (plumbing.ReferenceName, string, error) {
	ref, commit := s.ref, s.commit
	if ref == "" {
		ref = s.opts.Git.Branch
	}
	have := make(map[plumbing.ReferenceName]bool, len(refs))
	for _, r := range refs {
		have[r.Name()] = true
	}
	switch {
	case ref == "" || ref == "HEAD":
		return "", commit, nil
	case strings.HasPrefix(ref, "refs/"):
		if have[plumbing.ReferenceName(ref)] {
			return plumbing.ReferenceName(ref), commit, nil
		}
	default:
		for _, n := range []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)} {
			if have[n] {
				return n, commit, nil
			}
		}
		if commit == "" && isHexPrefix(ref) {
			return "", ref, nil
		}
	}
	var branches []string
	for _, r := range refs {
		if r.Name().IsBranch() || r.Name().IsTag() {
			branches = append(branches, r.Name().Short())
		}
	}
	sort.Strings(branches)
	if len(branches) > 10 {
		branches = append(branches[:10], "…")
	}
	return "", "", fmt.Errorf("build context %s: %w: %q is not a branch, tag or ref of the repository (it has %s)", s, ErrBadRef, ref, strings.Join(branches, ", "))
}

func isHexPrefix(s string) bool {
	if len(s) < 7 || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// wrap classifies a go-git error into the package's error kinds, with a
// hint on what to do.
func (s *gitSource) wrap(doing string, err error) error {
	msg := err.Error()
	// go-git repeats the sentinel and the server's body on several lines.
	detail := strings.Join(strings.Fields(msg), " ")
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
		detail = "the server refused the credentials, or wants some"
	}
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(msg, "unable to authenticate"):
		hint := fmt.Sprintf("set %s and %s, or %s", EnvGitUsername, EnvGitPassword, EnvGitToken)
		if s.ssh {
			hint = fmt.Sprintf("check the key in %s is authorised on the server", EnvGitSSHKey)
		}
		return fmt.Errorf("build context %s: %s: %w: %s; %s", s, doing, ErrAuth, detail, hint)
	case errors.Is(err, transport.ErrRepositoryNotFound), strings.Contains(msg, "no such repository"),
		strings.Contains(msg, "not found") && strings.Contains(msg, "repository"):
		return fmt.Errorf("build context %s: %s: %w: no repository at %s", s, doing, ErrNotFound, redactURL(s.repoURL))
	case errors.Is(err, plumbing.ErrReferenceNotFound), errors.As(err, new(git.NoMatchingRefSpecError)):
		return fmt.Errorf("build context %s: %s: %w: %s", s, doing, ErrBadRef, detail)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("build context %s: %s: the repository is empty", s, doing)
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		return fmt.Errorf("build context %s: %s: %s; trust the server's CA with %s=/path/ca.pem, or pass --git insecure-skip-tls=true", s, doing, detail, EnvGitCAInfo)
	case strings.Contains(msg, "knownhosts"):
		return fmt.Errorf("build context %s: %s: %s; put the server's host key in a known_hosts file and set %s to it", s, doing, detail, EnvGitSSHKnownHosts)
	}
	return fmt.Errorf("build context %s: %s: %w", s, doing, err)
}
