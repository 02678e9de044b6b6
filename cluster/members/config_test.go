package members

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "n1", BindAddr: "127.0.0.1:0", Meta: Meta{Roles: []string{"block"}}}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"valid", func(*Config) {}, nil},
		{"valid fixed port and ipv6", func(c *Config) { c.BindAddr = "[::1]:7946" }, nil},
		{"missing name and bind", func(c *Config) { c.Name, c.BindAddr = "", "" },
			[]string{"Name is required", "BindAddr is required"}},
		{"no port", func(c *Config) { c.BindAddr = "127.0.0.1" }, []string{"BindAddr"}},
		{"hostname", func(c *Config) { c.BindAddr = "localhost:0" }, []string{"must be an IP"}},
		{"bad port", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }, []string{"bad port"}},
		{"empty role and join", func(c *Config) { c.Meta.Roles = []string{""}; c.Join = []string{"x:1", ""} },
			[]string{"Meta.Roles[0] is empty", "Join[1] is empty"}},
		{"meta too large", func(c *Config) { c.Meta.HTTPAddr = strings.Repeat("h", MaxMetaSize) },
			[]string{"more than the limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Meta.Roles = append([]string(nil), ok.Meta.Roles...)
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestMetaRoundTrip(t *testing.T) {
	in := Meta{Roles: []string{"block", "meta"}, GRPCAddr: "10.0.0.1:7000", RaftAddr: "10.0.0.1:7001",
		HTTPAddr: "10.0.0.1:8080", ClusterID: "c1"}
	b, err := encodeMeta(in)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != MetaVersion {
		t.Fatalf("version byte %d", b[0])
	}
	out, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.GRPCAddr != in.GRPCAddr || out.RaftAddr != in.RaftAddr || out.HTTPAddr != in.HTTPAddr ||
		out.ClusterID != in.ClusterID || len(out.Roles) != 2 || !out.HasRole("meta") || out.HasRole("x") {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	for _, bad := range [][]byte{nil, {2, '{', '}'}, {MetaVersion, '{'}} {
		if _, err := decodeMeta(bad); err == nil {
			t.Errorf("decodeMeta(%q) = nil error", bad)
		}
	}
}

func TestSameCluster(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{{"", "", true}, {"a", "", true}, {"", "b", true}, {"a", "a", true}, {"a", "b", false}}
	for _, tt := range tests {
		if got := sameCluster(tt.a, tt.b); got != tt.want {
			t.Errorf("sameCluster(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}
