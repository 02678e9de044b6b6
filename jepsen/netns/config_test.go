package netns

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		wants []string // substrings of the error; none: valid
	}{
		{"defaults", Config{Hosts: 3}, nil},
		{"max", Config{Hosts: MaxHosts, Subnet: netip.MustParsePrefix("10.1.0.0/16"), Prefix: "abcdefgh"}, nil},
		{"a /24", Config{Hosts: 1, Subnet: netip.MustParsePrefix("10.213.7.0/24"), Prefix: "x1"}, nil},
		{"no hosts", Config{}, []string{"Hosts 0"}},
		{"too many", Config{Hosts: MaxHosts + 1}, []string{"Hosts 51"}},
		{"ipv6", Config{Hosts: 1, Subnet: netip.MustParsePrefix("fd00::/64")}, []string{"not IPv4"}},
		{"small", Config{Hosts: 1, Subnet: netip.MustParsePrefix("10.0.0.0/25")}, []string{"/16 to /24"}},
		{"huge", Config{Hosts: 1, Subnet: netip.MustParsePrefix("10.0.0.0/8")}, []string{"/16 to /24"}},
		{"host bits", Config{Hosts: 1, Subnet: netip.MustParsePrefix("10.0.0.5/24")}, []string{"host bits"}},
		{"public", Config{Hosts: 1, Subnet: netip.MustParsePrefix("192.168.1.0/24")}, []string{"not inside 10.0.0.0/8"}},
		{"prefix upper", Config{Hosts: 1, Prefix: "Cj"}, []string{"Prefix"}},
		{"prefix digit first", Config{Hosts: 1, Prefix: "1c"}, []string{"Prefix"}},
		{"prefix long", Config{Hosts: 1, Prefix: "abcdefghi"}, []string{"Prefix"}},
		{"prefix dash", Config{Hosts: 1, Prefix: "c-j"}, []string{"Prefix"}},
		{"everything", Config{Hosts: -1, Subnet: netip.MustParsePrefix("172.16.0.0/24"), Prefix: "A"},
			[]string{"Hosts -1", "not inside", "Prefix"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNamesAndAddresses(t *testing.T) {
	p := netip.MustParsePrefix("10.213.5.0/24")
	run := runID(p)
	if run != "d505" {
		t.Fatalf("runID = %q", run)
	}
	if got := nsName("cj", run, 0); got != "cjd505-n1" {
		t.Errorf("nsName = %q", got)
	}
	if got := rootLinkName("abcdefgh", "ffff"); len(got) > 15 {
		t.Errorf("root link %q is longer than IFNAMSIZ-1", got)
	}
	if got := nthAddr(p, 1); got != netip.MustParseAddr("10.213.5.1") {
		t.Errorf("host 0 = %v", got)
	}
	if got := harnessAddr(p); got != netip.MustParseAddr("10.213.5.254") {
		t.Errorf("harness = %v", got)
	}
	if got := harnessAddr(netip.MustParsePrefix("10.7.0.0/16")); got != netip.MustParseAddr("10.7.255.254") {
		t.Errorf("harness of a /16 = %v", got)
	}
	for _, tc := range []struct {
		prefix, name, run string
		ok                bool
	}{
		{"cj", "cjd505", "d505", true},
		{"cj", "cjd505-hub", "d505", true},
		{"cj", "cjd505-n12", "d505", true},
		{"cj", "cjd505-n", "", false},
		{"cj", "cjd505-x1", "", false},
		{"cj", "cjd50", "", false},
		{"cj", "cjd5050", "", false},
		{"cj", "cjD505", "", false},
		{"cj", "cjabcd0-n1", "", false}, // prefix "cja", run "bcd0"
		{"cja", "cjabcd0-n1", "bcd0", true},
		{"cj", "xyd505", "", false},
		{"cj", "docker0", "", false},
	} {
		run, ok := parseRun(tc.prefix, tc.name)
		if run != tc.run || ok != tc.ok {
			t.Errorf("parseRun(%q, %q) = %q, %v; want %q, %v", tc.prefix, tc.name, run, ok, tc.run, tc.ok)
		}
	}
	// Every name the package makes parses back to its run.
	for _, name := range []string{nsName("cj", run, 49), hubName("cj", run), rootLinkName("cj", run)} {
		if got, ok := parseRun("cj", name); !ok || got != run {
			t.Errorf("parseRun(%q) = %q, %v", name, got, ok)
		}
	}
}

func TestOverlaps(t *testing.T) {
	routes := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),
		netip.MustParsePrefix("10.213.3.0/24"),
		netip.MustParsePrefix("10.213.9.254/32"),
		netip.MustParsePrefix("10.64.0.0/10"),
	}
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{"10.213.0.0/24", false},
		{"10.213.3.0/24", true},
		{"10.213.9.0/24", true},
		{"10.213.0.0/16", true},
		{"10.100.1.0/24", true},
		{"10.1.0.0/16", false},
	} {
		if _, got := overlaps(routes, netip.MustParsePrefix(tc.p)); got != tc.want {
			t.Errorf("overlaps(%s) = %v", tc.p, got)
		}
	}
}
