package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/cluster"
)

func TestLoadConfig(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	defaults := cluster.Config{
		Name:          host,
		Dir:           "./coffer-data",
		Roles:         []string{"meta", "block", "gateway"},
		RaftAddr:      "127.0.0.1:7100",
		GRPCAddr:      "127.0.0.1:7200",
		GossipAddr:    "127.0.0.1:7300",
		HTTPAddr:      "127.0.0.1:8080",
		Shards:        8,
		GroupReplicas: 3,
		BlockR:        3,
		BlockW:        2,
	}
	with := func(f func(c *cluster.Config)) cluster.Config {
		c := defaults
		c.Roles = append([]string(nil), defaults.Roles...)
		f(&c)
		return c
	}
	key16 := "AAECAwQFBgcICQoLDA0ODw==" // bytes 0..15
	key16Bytes := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	defOpts := nodeOptions{LogLevel: "info", LogFormat: "text"}

	// "@yaml" in args or env is replaced by the path of a file holding yaml.
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		yaml     string
		want     cluster.Config
		wantOpts nodeOptions
		wantErrs []string // each must appear in the error; nil means no error
	}{
		{name: "defaults", want: defaults, wantOpts: defOpts},
		{
			name: "flags",
			args: []string{
				"--name", "n1", "--dir", "/var/lib/coffer", "--roles", "meta,block",
				"--raft-addr", "10.0.0.1:1", "--grpc-addr", "10.0.0.1:2", "--gossip-addr", "10.0.0.1:3",
				"--http-addr=10.0.0.1:4", "--join", "10.0.0.2:3", "--bootstrap-expect", "3",
				"--shards", "16", "--group-replicas", "5", "--block-replicas", "3", "--block-write-quorum", "1",
				"--admin-password", "s3cret", "--gossip-key", key16,
				"--tls-ca", "ca.pem", "--tls-cert", "n1.pem", "--tls-key", "n1.key",
				"--log-level", "debug", "--log-format", "json",
			},
			want: cluster.Config{
				Name: "n1", Dir: "/var/lib/coffer", Roles: []string{"meta", "block"},
				RaftAddr: "10.0.0.1:1", GRPCAddr: "10.0.0.1:2", GossipAddr: "10.0.0.1:3", HTTPAddr: "10.0.0.1:4",
				Join: []string{"10.0.0.2:3"}, BootstrapExpect: 3, Shards: 16, GroupReplicas: 5, BlockR: 3, BlockW: 1,
				AdminPassword: "s3cret", GossipKey: key16Bytes,
				TLS: &cluster.TLSFiles{CAFile: "ca.pem", CertFile: "n1.pem", KeyFile: "n1.key"},
			},
			wantOpts: nodeOptions{LogLevel: "debug", LogFormat: "json"},
		},
		{
			name: "environment",
			env: map[string]string{
				"COFFER_NAME": "n2", "COFFER_DIR": "/d", "COFFER_ROLES": "gateway",
				"COFFER_RAFT_ADDR": "10.0.0.1:1", "COFFER_GRPC_ADDR": "10.0.0.1:2",
				"COFFER_GOSSIP_ADDR": "10.0.0.1:3", "COFFER_HTTP_ADDR": "10.0.0.1:4",
				"COFFER_JOIN": "10.0.0.2:3, 10.0.0.3:3", "COFFER_BOOTSTRAP_EXPECT": "5",
				"COFFER_SHARDS": "32", "COFFER_GROUP_REPLICAS": "5", "COFFER_BLOCK_REPLICAS": "4",
				"COFFER_BLOCK_WRITE_QUORUM": "3", "COFFER_ADMIN_PASSWORD": "pw", "COFFER_GOSSIP_KEY": key16,
				"COFFER_TLS_CA": "a", "COFFER_TLS_CERT": "b", "COFFER_TLS_KEY": "c",
				"COFFER_LOG_LEVEL": "WARN", "COFFER_LOG_FORMAT": "json",
			},
			want: cluster.Config{
				Name: "n2", Dir: "/d", Roles: []string{"gateway"},
				RaftAddr: "10.0.0.1:1", GRPCAddr: "10.0.0.1:2", GossipAddr: "10.0.0.1:3", HTTPAddr: "10.0.0.1:4",
				Join: []string{"10.0.0.2:3", "10.0.0.3:3"}, BootstrapExpect: 5, Shards: 32, GroupReplicas: 5, BlockR: 4, BlockW: 3,
				AdminPassword: "pw", GossipKey: key16Bytes,
				TLS: &cluster.TLSFiles{CAFile: "a", CertFile: "b", KeyFile: "c"},
			},
			wantOpts: nodeOptions{LogLevel: "warn", LogFormat: "json"},
		},
		{
			name: "yaml file",
			args: []string{"--config", "@yaml"},
			yaml: `
name: n3
dir: /srv/coffer
roles: [meta, gateway]
raft_addr: 10.0.0.1:1
grpc_addr: 10.0.0.1:2
gossip_addr: 10.0.0.1:3
http_addr: 10.0.0.1:4
join:
  - 10.0.0.2:3
  - 10.0.0.3:3
bootstrap_expect: 3
shards: 4
group_replicas: 3
block_replicas: 2
block_write_quorum: 2
admin_password: 0123
gossip_key: ` + key16 + `
tls: {ca: ca.pem, cert: c.pem, key: k.pem}
log_level: error
log_format: text
`,
			want: cluster.Config{
				Name: "n3", Dir: "/srv/coffer", Roles: []string{"meta", "gateway"},
				RaftAddr: "10.0.0.1:1", GRPCAddr: "10.0.0.1:2", GossipAddr: "10.0.0.1:3", HTTPAddr: "10.0.0.1:4",
				Join: []string{"10.0.0.2:3", "10.0.0.3:3"}, BootstrapExpect: 3, Shards: 4, GroupReplicas: 3, BlockR: 2, BlockW: 2,
				AdminPassword: "0123", GossipKey: key16Bytes,
				TLS: &cluster.TLSFiles{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem"},
			},
			wantOpts: nodeOptions{LogLevel: "error", LogFormat: "text"},
		},
		{
			name: "config file named by the environment; empty file",
			env:  map[string]string{"COFFER_CONFIG": "@yaml"},
			yaml: "\n",
			want: defaults, wantOpts: defOpts,
		},
		{
			name: "flag beats env beats yaml beats default",
			args: []string{"--shards", "6"},
			env:  map[string]string{"COFFER_CONFIG": "@yaml", "COFFER_SHARDS": "5", "COFFER_GROUP_REPLICAS": "5"},
			yaml: "shards: 4\ngroup_replicas: 1\nblock_replicas: 1\nblock_write_quorum: 1\n",
			want: with(func(c *cluster.Config) {
				c.Shards, c.GroupReplicas, c.BlockR, c.BlockW = 6, 5, 1, 1
			}),
			wantOpts: defOpts,
		},
		{
			name: "--config beats COFFER_CONFIG",
			args: []string{"--config", "@yaml"},
			env:  map[string]string{"COFFER_CONFIG": "/does/not/exist.yaml"},
			yaml: "name: fromfile\n",
			want: with(func(c *cluster.Config) { c.Name = "fromfile" }), wantOpts: defOpts,
		},
		{
			name: "join is repeatable and comma-separated",
			args: []string{"--join", "10.0.0.1:7300", "-join", "10.0.0.2:7300,10.0.0.3:7300", "--join=10.0.0.4:7300"},
			env:  map[string]string{"COFFER_JOIN": "10.9.9.9:7300"},
			want: with(func(c *cluster.Config) {
				c.Join = []string{"10.0.0.1:7300", "10.0.0.2:7300", "10.0.0.3:7300", "10.0.0.4:7300"}
			}),
			wantOpts: defOpts,
		},
		{
			name: "yaml join and roles as comma strings",
			args: []string{"--config", "@yaml"},
			yaml: "join: 10.0.0.1:7300, 10.0.0.2:7300\nroles: block\n",
			want: with(func(c *cluster.Config) {
				c.Join = []string{"10.0.0.1:7300", "10.0.0.2:7300"}
				c.Roles = []string{"block"}
			}),
			wantOpts: defOpts,
		},
		{
			name: "tls split across sources",
			args: []string{"--config", "@yaml", "--tls-key", "k"},
			env:  map[string]string{"COFFER_TLS_CERT": "c"},
			yaml: "tls:\n  ca: a\n",
			want: with(func(c *cluster.Config) {
				c.TLS = &cluster.TLSFiles{CAFile: "a", CertFile: "c", KeyFile: "k"}
			}),
			wantOpts: defOpts,
		},
		{
			name:     "tls partial",
			args:     []string{"--tls-ca", "a"},
			wantErrs: []string{"missing tls-cert, tls-key"},
		},
		{
			name: "every kind of problem at once",
			args: []string{"--config", "@yaml", "--raft-addr", "127.0.0.1:99999", "--roles", "meta,bogus", "--shards", "many", "--log-level", "loud"},
			env:  map[string]string{"COFFER_GOSSIP_KEY": "!!secret-not-base64!!", "COFFER_BLOCK_REPLICAS": "x3"},
			yaml: "raft_adr: 127.0.0.1:1\nhttp_addr: 127.0.0.1:7200\ngroup_replicas: lots\nroles: {a: b}\n",
			wantErrs: []string{
				`--shards "many": not a whole number`,
				`--log-level "loud": must be one of debug, info, warn, error`,
				`COFFER_GOSSIP_KEY: not valid base64`,
				`COFFER_BLOCK_REPLICAS "x3": not a whole number`,
				`line 1: unknown key "raft_adr"`,
				`line 4: want a list of strings`,
				`!roles: no roles given`, // a leading '!' means must not appear
				`: group_replicas "lots": not a whole number`,
				`raft-addr "127.0.0.1:99999": bad port`,
				`role "bogus": must be one of meta, block, gateway`,
				`grpc-addr and http-addr both use port 7200`,
			},
		},
		{
			name:     "gossip key of a wrong length",
			args:     []string{"--gossip-key", "AAECAwQFBgcICQ=="},
			wantErrs: []string{"gossip key: 10 bytes, must be 16, 24 or 32"},
		},
		{
			name:     "explicitly empty roles",
			args:     []string{"--roles", ""},
			wantErrs: []string{"--roles: no roles given"},
		},
		{
			name:     "explicitly empty roles in yaml",
			args:     []string{"--config", "@yaml"},
			yaml:     "roles: []\n",
			wantErrs: []string{".yaml: roles: no roles given"},
		},
		{
			name:     "missing config file",
			env:      map[string]string{"COFFER_CONFIG": "/does/not/exist.yaml"},
			wantErrs: []string{"config file: open /does/not/exist.yaml"},
		},
		{
			name:     "malformed yaml",
			args:     []string{"--config", "@yaml"},
			yaml:     "name: [unclosed\n",
			wantErrs: []string{".yaml: yaml:"},
		},
		{
			name:     "unknown flag",
			args:     []string{"--shard", "3"},
			wantErrs: []string{"flag provided but not defined: -shard"},
		},
		{
			name:     "positional argument",
			args:     []string{"--name", "n1", "serve"},
			wantErrs: []string{`unexpected argument "serve"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "coffer.yaml")
			if tc.yaml != "" {
				if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			subst := func(s string) string { return strings.ReplaceAll(s, "@yaml", file) }
			var args []string
			for _, a := range tc.args {
				args = append(args, subst(a))
			}
			getenv := func(k string) string { return subst(tc.env[k]) }
			cfg, opts, err := loadConfig(args, getenv)
			if tc.wantErrs != nil {
				if err == nil {
					t.Fatalf("no error; want %q", tc.wantErrs)
				}
				if !errors.Is(err, cluster.ErrInvalidConfig) {
					t.Errorf("error does not wrap ErrInvalidConfig: %v", err)
				}
				for _, w := range tc.wantErrs {
					if not, ok := strings.CutPrefix(w, "!"); ok {
						if strings.Contains(err.Error(), not) {
							t.Errorf("error has %q:\n%v", not, err)
						}
						continue
					}
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error leaks a secret:\n%v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if cfg.Logger != nil {
				t.Error("Logger is set")
			}
			if !reflect.DeepEqual(cfg, tc.want) {
				t.Errorf("config:\n got %+v\nwant %+v", cfg, tc.want)
			}
			if opts != tc.wantOpts {
				t.Errorf("options: got %+v, want %+v", opts, tc.wantOpts)
			}
		})
	}
}

func TestLoadConfigHelp(t *testing.T) {
	for _, a := range []string{"-h", "--help"} {
		if _, _, err := loadConfig([]string{a}, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: got %v, want flag.ErrHelp", a, err)
		}
	}
}

func TestLoadConfigDoesNotAliasAllRoles(t *testing.T) {
	cfg, _, err := loadConfig(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Roles[0] = "changed"
	if cluster.AllRoles[0] == "changed" {
		cluster.AllRoles[0] = cluster.RoleMeta
		t.Fatal("Config.Roles aliases cluster.AllRoles")
	}
}

func TestUsage(t *testing.T) {
	var b bytes.Buffer
	usage(&b)
	out := b.String()
	for _, o := range cfgOptions {
		if !strings.Contains(out, "--"+o.name+" ") || !strings.Contains(out, o.env()) {
			t.Errorf("usage lacks --%s or %s:\n%s", o.name, o.env(), out)
		}
	}
	for _, env := range []string{"COFFER_RAFT_ADDR", "COFFER_JOIN", "COFFER_ADMIN_PASSWORD", "COFFER_CONFIG", "COFFER_TLS_CA"} {
		if !strings.Contains(out, env) {
			t.Errorf("usage lacks %s", env)
		}
	}
}
