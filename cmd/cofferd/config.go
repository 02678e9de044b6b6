package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/gateway"
)

// nodeOptions is what `cofferd` (the node) reads beyond cluster.Config.
type nodeOptions struct {
	// LogLevel is "debug", "info", "warn" or "error" (accepted as is by
	// slog.Level.UnmarshalText).
	LogLevel string
	// LogFormat is "text" or "json".
	LogFormat string
}

// cfgKind says how an option's text is turned into its value.
type cfgKind int

const (
	cfgString cfgKind = iota
	cfgList           // comma-separated; a repeatable flag; a YAML list
	cfgInt
	cfgBase64
)

// cfgOption is one setting that can come from a flag, the environment or
// the YAML file.
type cfgOption struct {
	name  string // the flag name; env COFFER_NAME_UPPER, YAML key name_with_underscores
	arg   string // the value placeholder in usage
	def   string // the default shown in usage ("" none)
	help  string
	kind  cfgKind
	oneOf []string // allowed values of a cfgString, if restricted
}

// env is the option's environment variable.
func (o cfgOption) env() string {
	return "COFFER_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

// yamlKey is the option's key in the YAML file (tls-ca is tls: {ca: ...}).
func (o cfgOption) yamlKey() string {
	if k, ok := strings.CutPrefix(o.name, "tls-"); ok {
		return "tls." + k
	}
	return strings.ReplaceAll(o.name, "-", "_")
}

// cfgOptions lists every option, in the order usage prints them.
var cfgOptions = []cfgOption{
	{name: "config", arg: "FILE", help: "YAML configuration file"},
	{name: "name", arg: "NAME", def: "the host name", help: "unique, stable node name"},
	{name: "dir", arg: "DIR", def: "./coffer-data", help: "data directory"},
	{name: "roles", arg: "LIST", def: "meta,block,gateway", help: "roles the node plays", kind: cfgList},
	{name: "raft-addr", arg: "HOST:PORT", def: "127.0.0.1:7100", help: "Raft listener; HOST is what other nodes dial"},
	{name: "grpc-addr", arg: "HOST:PORT", def: "127.0.0.1:7200", help: "internal gRPC listener"},
	{name: "gossip-addr", arg: "HOST:PORT", def: "127.0.0.1:7300", help: "gossip listener"},
	{name: "http-addr", arg: "HOST:PORT", def: "127.0.0.1:8080", help: "HTTP API listener"},
	{name: "join", arg: "HOST:PORT", help: "gossip address of another node (repeatable or comma-separated)", kind: cfgList},
	{name: "bootstrap-expect", arg: "N", def: "0", help: "meta nodes that must meet before a new cluster forms (0: only join)", kind: cfgInt},
	{name: "shards", arg: "N", def: strconv.Itoa(cluster.DefaultShards), help: "shard groups of a new cluster", kind: cfgInt},
	{name: "group-replicas", arg: "N", def: strconv.Itoa(cluster.DefaultGroupReplicas), help: "voters per Raft group", kind: cfgInt},
	{name: "block-replicas", arg: "R", def: strconv.Itoa(cluster.DefaultBlockR), help: "replicas per block", kind: cfgInt},
	{name: "block-write-quorum", arg: "W", def: strconv.Itoa(cluster.DefaultBlockW), help: "block replicas that acknowledge a write", kind: cfgInt},
	{name: "max-file-size", arg: "BYTES", def: strconv.FormatInt(gateway.DefaultMaxFileSize, 10), help: "largest file the gateway accepts", kind: cfgInt},
	{name: "block-cache", arg: "BYTES", def: strconv.FormatInt(gateway.DefaultBlockCache, 10), help: "gateway's in-memory block cache (-1: none)", kind: cfgInt},
	{name: "admin-password", arg: "PASSWORD", def: "generated", help: "first admin's password (used when bootstrapping)"},
	{name: "gossip-key", arg: "BASE64", help: "gossip encryption key: base64 of 16, 24 or 32 bytes", kind: cfgBase64},
	{name: "tls-ca", arg: "FILE", help: "cluster CA (PEM); the three tls options go together"},
	{name: "tls-cert", arg: "FILE", help: "this node's certificate (PEM)"},
	{name: "tls-key", arg: "FILE", help: "its key (PEM)"},
	{name: "log-level", arg: "LEVEL", def: "info", help: "debug, info, warn or error", oneOf: []string{"debug", "info", "warn", "error"}},
	{name: "log-format", arg: "FORMAT", def: "text", help: "text or json", oneOf: []string{"text", "json"}},
}

// cfgRaw is an option's text as one source gave it.
type cfgRaw struct {
	vals []string // one value, or a list's items
	src  string   // names the source in errors: --shards, COFFER_SHARDS, file: shards
}

// cfgFlag is a flag.Value that records the text given, so that bad values
// are reported with every other problem rather than stopping the parse.
type cfgFlag struct {
	opt  cfgOption
	into map[string]cfgRaw
}

func (f cfgFlag) String() string { return "" }

func (f cfgFlag) Set(s string) error {
	r := cfgRaw{src: "--" + f.opt.name}
	if f.opt.kind == cfgList {
		r.vals = append(f.into[f.opt.name].vals, splitList(s)...)
	} else {
		r.vals = []string{s}
	}
	f.into[f.opt.name] = r
	return nil
}

// loadConfig turns flags (args, without the program name), the environment
// (getenv) and the optional YAML file into a node's Config and options.
// Precedence: flags, environment, file, defaults. The error reports every
// problem found, bad values from each source and then Config.Validate's,
// and wraps cluster.ErrInvalidConfig; it is flag.ErrHelp for -h/--help.
// The Config's Logger is nil: the caller builds it from nodeOptions.
func loadConfig(args []string, getenv func(string) string) (cluster.Config, nodeOptions, error) {
	fs := flag.NewFlagSet("cofferd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fromFlags := map[string]cfgRaw{}
	for _, o := range cfgOptions {
		fs.Var(cfgFlag{opt: o, into: fromFlags}, o.name, o.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cluster.Config{}, nodeOptions{}, err
		}
		return cluster.Config{}, nodeOptions{}, fmt.Errorf("%w: %w", cluster.ErrInvalidConfig, err)
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}

	fromEnv := map[string]cfgRaw{}
	for _, o := range cfgOptions {
		v := getenv(o.env())
		if v == "" {
			continue
		}
		r := cfgRaw{vals: []string{v}, src: o.env()}
		if o.kind == cfgList {
			r.vals = splitList(v)
		}
		fromEnv[o.name] = r
	}

	var fromFile map[string]cfgRaw
	var fileErrs []error
	if r, ok := pickRaw("config", fromFlags, fromEnv); ok {
		fromFile, fileErrs = readConfigFile(r.vals[0])
	}

	// Parse every source's values, so that a bad one is reported even
	// where another source overrides it.
	sources := []map[string]cfgRaw{fromFlags, fromEnv, fromFile}
	vals := make([]map[string]any, len(sources))
	for i, src := range sources {
		vals[i] = map[string]any{}
		for _, o := range cfgOptions {
			if r, ok := src[o.name]; ok {
				v, err := parseOption(o, r)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				vals[i][o.name] = v
			}
		}
		if i == 1 {
			errs = append(errs, fileErrs...) // file errors after env errors
		}
	}
	get := func(name string) (any, bool) {
		for _, v := range vals {
			if x, ok := v[name]; ok {
				return x, true
			}
		}
		return nil, false
	}
	str := func(name, def string) string {
		if v, ok := get(name); ok {
			return v.(string)
		}
		return def
	}
	num := func(name string, def int) int {
		if v, ok := get(name); ok {
			return v.(int)
		}
		return def
	}
	list := func(name string, def []string) []string {
		if v, ok := get(name); ok {
			return v.([]string)
		}
		return def
	}

	cfg := cluster.Config{
		Dir:             str("dir", "./coffer-data"),
		Roles:           list("roles", slices.Clone(cluster.AllRoles)),
		RaftAddr:        str("raft-addr", "127.0.0.1:7100"),
		GRPCAddr:        str("grpc-addr", "127.0.0.1:7200"),
		GossipAddr:      str("gossip-addr", "127.0.0.1:7300"),
		HTTPAddr:        str("http-addr", "127.0.0.1:8080"),
		Join:            list("join", nil),
		BootstrapExpect: num("bootstrap-expect", 0),
		Shards:          num("shards", cluster.DefaultShards),
		GroupReplicas:   num("group-replicas", cluster.DefaultGroupReplicas),
		BlockR:          num("block-replicas", cluster.DefaultBlockR),
		BlockW:          num("block-write-quorum", cluster.DefaultBlockW),
		AdminPassword:   str("admin-password", ""),
		Gateway: gateway.Config{
			MaxFileSize: int64(num("max-file-size", 0)),
			BlockCache:  int64(num("block-cache", 0)),
		},
	}
	if v, ok := get("name"); ok {
		cfg.Name = v.(string)
	} else if h, err := os.Hostname(); err != nil {
		errs = append(errs, fmt.Errorf("name: not set, and the host name is unknown: %w", err))
	} else {
		cfg.Name = h
	}
	if v, ok := get("gossip-key"); ok {
		cfg.GossipKey = v.([]byte)
	}
	tls := cluster.TLSFiles{CAFile: str("tls-ca", ""), CertFile: str("tls-cert", ""), KeyFile: str("tls-key", "")}
	if tls != (cluster.TLSFiles{}) {
		var missing []string
		for _, f := range []struct{ name, val string }{{"tls-ca", tls.CAFile}, {"tls-cert", tls.CertFile}, {"tls-key", tls.KeyFile}} {
			if f.val == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("tls: tls-ca, tls-cert and tls-key go together; missing %s", strings.Join(missing, ", ")))
		} else {
			cfg.TLS = &tls
		}
	}
	opts := nodeOptions{LogLevel: str("log-level", "info"), LogFormat: str("log-format", "text")}

	errs = append(errs, validateProblems(cfg)...)
	if len(errs) > 0 {
		return cfg, opts, fmt.Errorf("%w: %w", cluster.ErrInvalidConfig, errors.Join(errs...))
	}
	return cfg, opts, nil
}

// pickRaw returns the first source's text for name.
func pickRaw(name string, srcs ...map[string]cfgRaw) (cfgRaw, bool) {
	for _, s := range srcs {
		if r, ok := s[name]; ok {
			return r, true
		}
	}
	return cfgRaw{}, false
}

// parseOption turns one source's text into the option's value: a string,
// []string, int or []byte.
func parseOption(o cfgOption, r cfgRaw) (any, error) {
	switch o.kind {
	case cfgList:
		if o.name == "roles" && len(r.vals) == 0 {
			return nil, fmt.Errorf("%s: no roles given (meta, block, gateway)", r.src)
		}
		return r.vals, nil
	case cfgInt:
		n, err := strconv.Atoi(strings.TrimSpace(r.vals[0]))
		if err != nil {
			return nil, fmt.Errorf("%s %q: not a whole number", r.src, r.vals[0])
		}
		return n, nil
	case cfgBase64:
		// Never echo the key itself.
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.vals[0]))
		if err != nil {
			return nil, fmt.Errorf("%s: not valid base64", r.src)
		}
		return b, nil
	}
	v := r.vals[0]
	if o.oneOf != nil {
		v = strings.ToLower(strings.TrimSpace(v))
		if !slices.Contains(o.oneOf, v) {
			return nil, fmt.Errorf("%s %q: must be one of %s", r.src, r.vals[0], strings.Join(o.oneOf, ", "))
		}
	}
	return v, nil
}

// validateProblems returns Validate's problems one by one, without its
// ErrInvalidConfig prefix (loadConfig adds it once for all problems).
func validateProblems(cfg cluster.Config) []error {
	err := cfg.Validate()
	if err == nil {
		return nil
	}
	var out []error
	var flatten func(error) bool
	flatten = func(e error) bool {
		m, ok := e.(interface{ Unwrap() []error })
		if !ok {
			return false
		}
		for _, x := range m.Unwrap() {
			if x == cluster.ErrInvalidConfig {
				continue
			}
			if !flatten(x) {
				out = append(out, x)
			}
		}
		return true
	}
	if !flatten(err) || len(out) == 0 {
		return []error{err}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// yamlList is a YAML list of strings; a single string is split at commas.
type yamlList []string

func (l *yamlList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = append(yamlList{}, splitList(n.Value)...) // non-nil: given
		return nil
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a list of strings", c.Line)}}
			}
			if v := strings.TrimSpace(c.Value); v != "" {
				out = append(out, v)
			}
		}
		*l = out
		return nil
	}
	// A TypeError lets the decoder go on and report other problems too.
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a list of strings", n.Line)}}
}

// cfgFile is the YAML file's shape. Scalars are read as text and parsed
// like flags; nil means absent.
type cfgFile struct {
	Name             *string   `yaml:"name"`
	Dir              *string   `yaml:"dir"`
	Roles            *yamlList `yaml:"roles"`
	RaftAddr         *string   `yaml:"raft_addr"`
	GRPCAddr         *string   `yaml:"grpc_addr"`
	GossipAddr       *string   `yaml:"gossip_addr"`
	HTTPAddr         *string   `yaml:"http_addr"`
	Join             *yamlList `yaml:"join"`
	BootstrapExpect  *string   `yaml:"bootstrap_expect"`
	Shards           *string   `yaml:"shards"`
	GroupReplicas    *string   `yaml:"group_replicas"`
	BlockReplicas    *string   `yaml:"block_replicas"`
	BlockWriteQuorum *string   `yaml:"block_write_quorum"`
	MaxFileSize      *string   `yaml:"max_file_size"`
	BlockCache       *string   `yaml:"block_cache"`
	AdminPassword    *string   `yaml:"admin_password"`
	GossipKey        *string   `yaml:"gossip_key"`
	TLS              *struct {
		CA   *string `yaml:"ca"`
		Cert *string `yaml:"cert"`
		Key  *string `yaml:"key"`
	} `yaml:"tls"`
	LogLevel  *string `yaml:"log_level"`
	LogFormat *string `yaml:"log_format"`
}

var yamlUnknownRE = regexp.MustCompile(`^(line \d+): field (.+) not found in type .*$`)

// readConfigFile reads the YAML file into raw option texts. A key that is
// not an option is an error; errors name the file.
func readConfigFile(path string) (map[string]cfgRaw, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{fmt.Errorf("config file: %w", err)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f cfgFile
	var errs []error
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, []error{fmt.Errorf("%s: %w", path, err)}
		}
		// Decoding went on past these; the fields decoded are good.
		for _, e := range te.Errors {
			if m := yamlUnknownRE.FindStringSubmatch(e); m != nil {
				e = fmt.Sprintf("%s: unknown key %q", m[1], m[2])
			}
			errs = append(errs, fmt.Errorf("%s: %s", path, e))
		}
	}
	out := map[string]cfgRaw{}
	put := func(name string, p *string) {
		if p != nil {
			out[name] = cfgRaw{vals: []string{*p}}
		}
	}
	putList := func(name string, p *yamlList) {
		if p != nil && *p != nil { // nil: absent or not a list (reported)
			out[name] = cfgRaw{vals: []string(*p)}
		}
	}
	put("name", f.Name)
	put("dir", f.Dir)
	putList("roles", f.Roles)
	put("raft-addr", f.RaftAddr)
	put("grpc-addr", f.GRPCAddr)
	put("gossip-addr", f.GossipAddr)
	put("http-addr", f.HTTPAddr)
	putList("join", f.Join)
	put("bootstrap-expect", f.BootstrapExpect)
	put("shards", f.Shards)
	put("group-replicas", f.GroupReplicas)
	put("block-replicas", f.BlockReplicas)
	put("block-write-quorum", f.BlockWriteQuorum)
	put("max-file-size", f.MaxFileSize)
	put("block-cache", f.BlockCache)
	put("admin-password", f.AdminPassword)
	put("gossip-key", f.GossipKey)
	if f.TLS != nil {
		put("tls-ca", f.TLS.CA)
		put("tls-cert", f.TLS.Cert)
		put("tls-key", f.TLS.Key)
	}
	put("log-level", f.LogLevel)
	put("log-format", f.LogFormat)
	for _, o := range cfgOptions {
		if r, ok := out[o.name]; ok {
			r.src = path + ": " + o.yamlKey()
			out[o.name] = r
		}
	}
	return out, errs
}

// usage prints a synopsis of cofferd's flags and their environment
// variables.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cofferd [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each flag may instead be set by its environment variable or, with --config,")
	fmt.Fprintln(w, "by the YAML key named like the flag with '_' for '-' (tls: {ca, cert, key}).")
	fmt.Fprintln(w, "Precedence: flags, then environment, then the file, then defaults.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, o := range cfgOptions {
		help := o.help
		if o.def != "" {
			help += " (default " + o.def + ")"
		}
		fmt.Fprintf(tw, "  --%s %s\t%s\t%s\n", o.name, o.arg, o.env(), help)
	}
	tw.Flush()
}
