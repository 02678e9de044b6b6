package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coffer-dev/coffer/cluster/adminrpc"
	"github.com/coffer-dev/coffer/cluster/raftmux"
)

// testCA is a certificate authority made up for one test; its files live
// in dir.
type testCA struct {
	t      testing.TB
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{t: t, dir: t.TempDir(), cert: cert, key: key}
	ca.caFile = filepath.Join(ca.dir, name+"-ca.pem")
	writePEM(t, ca.caFile, "CERTIFICATE", der)
	return ca
}

func randomSerial(t testing.TB) *big.Int {
	t.Helper()
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate for name (IP SAN 127.0.0.1, server and client
// auth) signed by the CA, writes it and its key as PEM files and returns
// them as TLSFiles (with this CA) and as a tls.Certificate.
func (ca *testCA) issue(name string) (*TLSFiles, tls.Certificate) {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := &TLSFiles{
		CAFile:   ca.caFile,
		CertFile: filepath.Join(ca.dir, name+".pem"),
		KeyFile:  filepath.Join(ca.dir, name+"-key.pem"),
	}
	writePEM(t, files.CertFile, "CERTIFICATE", der)
	writePEM(t, files.KeyFile, "PRIVATE KEY", keyDER)
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return files, cert
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func randomKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// startSecureNode starts a Fast node with mutual TLS and gossip encryption.
func startSecureNode(t testing.TB, o testNodeOpts, files *TLSFiles, gossipKey []byte) *Node {
	t.Helper()
	cfg := testConfig(t, o)
	cfg.TLS = files
	cfg.GossipKey = gossipKey
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", o.name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// groupInfoOver calls the admin service's GroupInfo(0) on addr over a
// fresh connection with creds.
func groupInfoOver(addr string, creds credentials.TransportCredentials) (*adminrpc.GroupReplica, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return adminrpc.NewClient(conn).GroupInfo(ctx, SystemGroup)
}

// memberNames returns the names n's gossip lists as live.
func memberNames(n *Node) []string {
	var out []string
	for _, m := range n.members.Nodes() {
		out = append(out, m.Name)
	}
	return out
}

// holdsFor checks cond every poll interval for d and fails the test the
// first time it does not hold: an observation window for something that
// must never happen.
func holdsFor(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Three nodes form a cluster over mutual TLS (Raft and gRPC) with
// encrypted gossip; clients and nodes without the cluster's credentials
// are turned away.
func TestClusterWithMutualTLSAndGossipKey(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	ctx := context.Background()
	const shards = 2
	ca := newTestCA(t, "cluster")
	gossipKey := randomKey(t)

	f1, _ := ca.issue("n1")
	f2, _ := ca.issue("n2")
	f3, _ := ca.issue("n3")
	n1 := startSecureNode(t, testNodeOpts{name: "n1", expect: 3, shards: shards}, f1, gossipKey)
	_, _, seed, _ := n1.Addrs()
	n2 := startSecureNode(t, testNodeOpts{name: "n2", expect: 3, shards: shards, join: []string{seed}}, f2, gossipKey)
	startSecureNode(t, testNodeOpts{name: "n3", expect: 3, shards: shards, join: []string{seed}}, f3, gossipKey)
	all3 := []string{"n1", "n2", "n3"}
	// Forming needs Raft (every group grows to 3 voters) and gRPC (the
	// controller's GroupInfo/ChangeGroup calls) to work over TLS.
	waitFor(t, 60*time.Second, "three TLS nodes form the cluster", func() error {
		_, err := formed(ctx, n1, all3)
		return err
	})

	_, grpcAddr, _, _ := n2.Addrs()
	_, clientCert := ca.issue("admin-client")

	// (a) A plaintext client is refused by the TLS server.
	if _, err := groupInfoOver(grpcAddr, insecure.NewCredentials()); err == nil {
		t.Error("plaintext gRPC client: GroupInfo succeeded")
	} else if !errors.Is(err, adminrpc.ErrUnavailable) {
		t.Errorf("plaintext gRPC client: %v, want a transport failure (ErrUnavailable)", err)
	}

	// (b) A client with a certificate from another CA is refused. It trusts
	// the cluster CA itself, so the refusal comes from the node.
	other := newTestCA(t, "other")
	_, strangerCert := other.issue("stranger")
	if _, err := groupInfoOver(grpcAddr, credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{strangerCert}, RootCAs: ca.pool(),
	})); err == nil {
		t.Error("client with another CA's certificate: GroupInfo succeeded")
	} else if !errors.Is(err, adminrpc.ErrUnavailable) {
		t.Errorf("client with another CA's certificate: %v, want a transport failure (ErrUnavailable)", err)
	}
	// ... and so is a TLS client that presents no certificate at all.
	if _, err := groupInfoOver(grpcAddr, credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: ca.pool(),
	})); err == nil {
		t.Error("TLS client without a certificate: GroupInfo succeeded")
	}

	// (c) A client with a cluster-CA certificate is served; it verifies
	// the node's certificate (IP SAN 127.0.0.1) against the cluster CA.
	info, err := groupInfoOver(grpcAddr, credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{clientCert}, RootCAs: ca.pool(),
	}))
	if err != nil {
		t.Fatalf("client with a cluster certificate: %v", err)
	}
	if info.Group != SystemGroup || info.Node != "n2" || len(info.Config) != 3 {
		t.Errorf("GroupInfo over TLS = %+v, want group 0 on n2 with 3 replicas", info)
	}

	// (d) A plain TCP connection to the Raft port that sends a raftmux
	// header is not served: the TLS listener fails the handshake, closes
	// the connection and counts it as refused.
	raftAddr, _, _, _ := n2.Addrs()
	before := n2.mux.Stats()
	c, err := net.DialTimeout("tcp", raftAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hdr := binary.BigEndian.AppendUint64(append([]byte(raftmux.Magic), raftmux.Version), SystemGroup)
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("plain Raft connection: still open after 5s (read %d bytes)", len(got))
	}
	// The server may answer with a TLS alert record (type 21), nothing else.
	if len(got) > 0 && got[0] != 21 {
		t.Errorf("plain Raft connection: the server sent %q, want nothing or a TLS alert", got)
	}
	waitFor(t, 5*time.Second, "the refused Raft connection is counted", func() error {
		if after := n2.mux.Stats(); after.RefusedBadHeader <= before.RefusedBadHeader {
			return fmt.Errorf("stats before %+v, after %+v", before, after)
		}
		return nil
	})

	// (e) A node with the cluster's CA but the wrong gossip key never
	// joins; one with the right key does.
	f4x, _ := ca.issue("n4x")
	n4x := startSecureNode(t, testNodeOpts{name: "n4x", shards: shards, join: []string{seed}}, f4x, randomKey(t))
	f4, _ := ca.issue("n4")
	n4 := startSecureNode(t, testNodeOpts{name: "n4", shards: shards, join: []string{seed}}, f4, gossipKey)
	waitFor(t, 15*time.Second, "n4 (right gossip key) joins", func() error {
		if names := memberNames(n1); !slices.Contains(names, "n4") {
			return fmt.Errorf("n1 sees %v", names)
		}
		if names := memberNames(n4); !slices.Contains(names, "n1") {
			return fmt.Errorf("n4 sees %v", names)
		}
		return nil
	})
	// n4x retries its join every 500ms (Fast); give it several tries.
	holdsFor(t, 3*time.Second, "n4x (wrong gossip key) stays out", func() error {
		for _, n := range []*Node{n1, n2, n4} {
			if names := memberNames(n); slices.Contains(names, "n4x") {
				return fmt.Errorf("%s sees %v", n.Name(), names)
			}
		}
		if names := memberNames(n4x); !slices.Equal(names, []string{"n4x"}) {
			return fmt.Errorf("n4x sees %v", names)
		}
		return nil
	})
}

// freeAddrs returns n loopback addresses whose ports were free (TCP and
// UDP) a moment ago.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var open []io.Closer
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, l)
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue // UDP port taken: try another
		}
		open = append(open, u)
		out = append(out, addr)
	}
	return out
}

// bindAll binds TCP on every address and UDP on the gossip one, then
// releases them.
func bindAll(raft, grpcA, gossip, httpA string) error {
	var open []io.Closer
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for _, a := range []string{raft, grpcA, gossip, httpA} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		open = append(open, l)
	}
	u, err := net.ListenPacket("udp", gossip)
	if err != nil {
		return err
	}
	open = append(open, u)
	return nil
}

// Unusable TLS files fail Start with ErrInvalidConfig and leave nothing
// behind: the ports can be bound and the data directory reused.
func TestBadTLSConfigRefused(t *testing.T) {
	ca := newTestCA(t, "cluster")
	good, _ := ca.issue("n1")
	other, _ := ca.issue("n2")
	dir := t.TempDir()
	noPEM := filepath.Join(dir, "no-pem.pem")
	if err := os.WriteFile(noPEM, []byte("this is not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	with := func(f func(*TLSFiles)) *TLSFiles {
		c := *good
		f(&c)
		return &c
	}
	tests := []struct {
		name string
		tls  *TLSFiles
	}{
		{"missing CA file", with(func(f *TLSFiles) { f.CAFile = filepath.Join(dir, "missing-ca.pem") })},
		{"CA file without PEM", with(func(f *TLSFiles) { f.CAFile = noPEM })},
		{"CA file holds only a key", with(func(f *TLSFiles) { f.CAFile = good.KeyFile })},
		{"certificate and key do not match", with(func(f *TLSFiles) { f.KeyFile = other.KeyFile })},
		{"missing certificate file", with(func(f *TLSFiles) { f.CertFile = filepath.Join(dir, "missing.pem") })},
		{"missing key file", with(func(f *TLSFiles) { f.KeyFile = filepath.Join(dir, "missing-key.pem") })},
		{"key file without PEM", with(func(f *TLSFiles) { f.KeyFile = noPEM })},
		{"no CA named", with(func(f *TLSFiles) { f.CAFile = "" })},
	}
	addrs := freeAddrs(t, 4)
	nodeDir := filepath.Join(t.TempDir(), "n1")
	cfgFor := func(files *TLSFiles) Config {
		cfg := testConfig(t, testNodeOpts{name: "n1", dir: nodeDir})
		cfg.RaftAddr, cfg.GRPCAddr, cfg.GossipAddr, cfg.HTTPAddr = addrs[0], addrs[1], addrs[2], addrs[3]
		cfg.TLS = files
		cfg.GossipKey = randomKey(t)
		return cfg
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n, err := Start(ctx, cfgFor(tt.tls))
			if err == nil {
				n.Close()
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Start: %v, want an error wrapping ErrInvalidConfig", err)
			}
			if !strings.Contains(strings.ToLower(err.Error()), "tls") {
				t.Errorf("Start: %v, want the error to name the TLS setting", err)
			}
			if err := bindAll(addrs[0], addrs[1], addrs[2], addrs[3]); err != nil {
				t.Errorf("a port is still bound after the failed start: %v", err)
			}
		})
	}

	// With good files the same directory and ports start a node (the
	// failed starts left no lock and no listener), which serves over TLS.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfgFor(good))
	if err != nil {
		t.Fatalf("start with good TLS files on the same directory and ports: %v", err)
	}
	raftAddr, grpcAddr, gossipAddr, httpAddr := n.Addrs()
	if got, want := []string{raftAddr, grpcAddr, gossipAddr, httpAddr}, addrs; !slices.Equal(got, want) {
		t.Errorf("bound %v, want %v", got, want)
	}
	if err := n.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := bindAll(addrs[0], addrs[1], addrs[2], addrs[3]); err != nil {
		t.Errorf("a port is still bound after Close: %v", err)
	}
}
