package buildcontext

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// startSSHGit serves f.base to one authorised key over SSH on loopback:
// a small x/crypto/ssh server that runs git-upload-pack for "exec"
// requests, as an SSH git host does. It returns the address and the
// host's public key.
func startSSHGit(t *testing.T, f *gitFixture, authorised ssh.PublicKey) (string, ssh.PublicKey) {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorised.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorised")
		},
	}
	cfg.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSSHGit(c, cfg, f.base)
		}
	}()
	return l.Addr().String(), hostSigner.PublicKey()
}

func serveSSHGit(c net.Conn, cfg *ssh.ServerConfig, base string) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type != "exec" {
					req.Reply(req.Type == "env", nil)
					continue
				}
				n := binary.BigEndian.Uint32(req.Payload)
				command := string(req.Payload[4 : 4+n])
				prog, repo, _ := strings.Cut(command, " ")
				if prog != "git-upload-pack" {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				cmd := exec.Command("git", "upload-pack", filepath.Join(base, strings.Trim(repo, "'/")))
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				status := uint32(0)
				if err := cmd.Run(); err != nil {
					status = 1
				}
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
				return
			}
		}()
	}
}

func writeKey(t *testing.T, dir, name string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	return p, sshPub
}

func TestGitSSH(t *testing.T) {
	f := newGitFixture(t)
	secrets := t.TempDir() // stands in for a mounted Secret
	keyPath, pub := writeKey(t, secrets, "id_ed25519")
	otherKey, _ := writeKey(t, secrets, "other")
	addr, hostKey := startSSHGit(t, f, pub)
	_, port, _ := net.SplitHostPort(addr)

	knownHosts := filepath.Join(secrets, "known_hosts")
	os.WriteFile(knownHosts, []byte(knownhosts.Line([]string{"[127.0.0.1]:" + port}, hostKey)+"\n"), 0o644)
	_, strangerKey := writeKey(t, t.TempDir(), "stranger")
	wrongHosts := filepath.Join(secrets, "wrong_hosts")
	os.WriteFile(wrongHosts, []byte(knownhosts.Line([]string{"[127.0.0.1]:" + port}, strangerKey)+"\n"), 0o644)

	url := fmt.Sprintf("ssh://git@%s/app.git", addr)
	for _, tc := range []struct {
		name string
		url  string
		env  map[string]string
		want error
		msg  string
	}{
		{name: "key from a mounted secret", url: url + "#v1", env: map[string]string{"GIT_SSH_KEY": keyPath, "GIT_SSH_KNOWN_HOSTS": knownHosts}},
		{name: "key not authorised", url: url, env: map[string]string{"GIT_SSH_KEY": otherKey, "GIT_SSH_KNOWN_HOSTS": knownHosts}, want: ErrAuth, msg: "GIT_SSH_KEY"},
		{name: "host key mismatch", url: url, env: map[string]string{"GIT_SSH_KEY": keyPath, "GIT_SSH_KNOWN_HOSTS": wrongHosts}, msg: "GIT_SSH_KNOWN_HOSTS"},
		{name: "missing key file", url: url, env: map[string]string{"GIT_SSH_KEY": filepath.Join(secrets, "nope"), "GIT_SSH_KNOWN_HOSTS": knownHosts}, msg: "reading the SSH key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cleanup, err := Prepare(context.Background(), tc.url, t.TempDir(), Options{Env: envMap(tc.env)})
			if tc.want != nil || tc.msg != "" {
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			assertTree(t, dir, mainTree("v1\n"))
		})
	}
}
