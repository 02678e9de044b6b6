package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// nodeCreds are the node's transport credentials between nodes: mutual TLS
// under the cluster CA when configured, plain TCP otherwise.
type nodeCreds struct {
	server *tls.Config // nil: plain
	client *tls.Config
}

// transportCredentials loads the TLS files. A peer is trusted when its
// certificate chains to the cluster CA; host names are not checked (nodes
// are addressed by IP and identified by the CA's signature).
func (c Config) transportCredentials() (*nodeCreds, error) {
	if c.TLS == nil {
		return &nodeCreds{}, nil
	}
	caPEM, err := os.ReadFile(c.TLS.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: tls CA: %v", ErrInvalidConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: tls CA %s: no PEM certificate", ErrInvalidConfig, c.TLS.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: tls certificate: %v", ErrInvalidConfig, err)
	}
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots: pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		return err
	}
	return &nodeCreds{
		server: &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAnyClientCert, VerifyConnection: verify,
		},
		client: &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			// The chain is checked by VerifyConnection, without host names.
			InsecureSkipVerify: true, VerifyConnection: verify,
		},
	}, nil
}

func (c *nodeCreds) dialOptions() []grpc.DialOption {
	if c.client == nil {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(c.client))}
}

func (c *nodeCreds) serverOptions(m *metrics) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.unaryInterceptor),
		grpc.ChainStreamInterceptor(m.streamInterceptor),
	}
	if c.server != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(c.server)))
	}
	return opts
}

// connPool keeps one gRPC connection per peer address for the admin and
// metadata clients.
type connPool struct {
	creds *nodeCreds
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newConnPool(c *nodeCreds) *connPool {
	return &connPool{creds: c, conns: map[string]*grpc.ClientConn{}}
}

func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return nil, ErrClosed
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, p.creds.dialOptions()...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}
