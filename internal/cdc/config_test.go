package cdc

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil: valid
	}{
		{"zero is the default", Config{}, nil},
		{"explicit defaults", Config{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}, nil},
		{"smallest", Config{Min: 64, Avg: 128, Max: 129}, nil},
		{"largest", Config{Min: 1 << 20, Avg: 32 << 20, Max: 64 << 20}, nil},
		{"only Avg set, fits defaults", Config{Avg: 2 << 20}, nil},
		{"Min below 64", Config{Min: 63, Avg: 128, Max: 256}, []string{"Min 63 < 64"}},
		{"Avg not a power of two", Config{Min: 64, Avg: 100, Max: 256}, []string{"Avg 100 is not a power of two"}},
		{"Min equals Avg", Config{Min: 128, Avg: 128, Max: 256}, []string{"want Min < Avg < Max"}},
		{"Avg equals Max", Config{Min: 64, Avg: 256, Max: 256}, []string{"want Min < Avg < Max"}},
		{"Max above 64 MiB", Config{Max: 64<<20 + 1}, []string{"Max 67108865 > 67108864"}},
		{"Avg above default Max", Config{Avg: 8 << 20}, []string{"want Min < Avg < Max, have 262144, 8388608, 4194304"}},
		{"negative", Config{Min: -1}, []string{"negative size (Min -1, Avg 0, Max 0)", "Min -1 < 64"}},
		{"every problem at once", Config{Min: 10, Avg: 3000, Max: 128 << 20},
			[]string{"Min 10 < 64", "Max 134217728 > 67108864", "Avg 3000 is not a power of two"}},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: Validate(%+v) = %v, want nil", tt.name, tt.cfg, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate(%+v) = %v, want ErrInvalidConfig", tt.name, tt.cfg, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Validate(%+v) = %q, does not mention %q", tt.name, tt.cfg, err, w)
			}
		}
		if _, err := New(strings.NewReader("x"), tt.cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", tt.name, err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	if got, want := (Config{}).WithDefaults(), (Config{Min: DefaultMin, Avg: DefaultAvg, Max: DefaultMax}); got != want {
		t.Errorf("Config{}.WithDefaults() = %+v, want %+v", got, want)
	}
	if got, want := (Config{Avg: 2 << 20}).WithDefaults(), (Config{Min: DefaultMin, Avg: 2 << 20, Max: DefaultMax}); got != want {
		t.Errorf("WithDefaults kept Avg: %+v, want %+v", got, want)
	}
}

func TestMasks(t *testing.T) {
	tests := []struct {
		cfg          Config
		maskS, maskL uint64
	}{
		// log2(1 MiB) = 20: 22 strict bits, 18 loose bits, at the top.
		{Config{}, 0xffff_fc00_0000_0000, 0xffff_c000_0000_0000},
		// log2(128) = 7: 9 and 5 bits.
		{Config{Min: 64, Avg: 128, Max: 1024}, 0xff80_0000_0000_0000, 0xf800_0000_0000_0000},
	}
	for _, tt := range tests {
		p, err := tt.cfg.params()
		if err != nil {
			t.Fatal(err)
		}
		if p.maskS != tt.maskS || p.maskL != tt.maskL {
			t.Errorf("%+v: masks %#x, %#x, want %#x, %#x", tt.cfg, p.maskS, p.maskL, tt.maskS, tt.maskL)
		}
	}
}
