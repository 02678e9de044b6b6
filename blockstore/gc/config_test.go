package gc

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil = valid
	}{
		{"zero value", Config{}, nil},
		{"default-like", Config{Grace: 48 * time.Hour, DeleteRate: 100, MaxDeletes: 1000, DryRun: true}, nil},
		{"minimum grace", Config{Grace: MinGrace}, nil},
		{"negative grace", Config{Grace: -time.Second}, []string{"Grace"}},
		{"negative grace even if short allowed", Config{Grace: -1, AllowShortGrace: true}, []string{"Grace"}},
		{"short grace", Config{Grace: 59 * time.Second}, []string{"AllowShortGrace"}},
		{"one nanosecond grace", Config{Grace: 1}, []string{"AllowShortGrace"}},
		{"short grace allowed", Config{Grace: time.Millisecond, AllowShortGrace: true}, nil},
		{"negative rate", Config{DeleteRate: -1}, []string{"DeleteRate"}},
		{"NaN rate", Config{DeleteRate: math.NaN()}, []string{"DeleteRate"}},
		{"infinite rate", Config{DeleteRate: math.Inf(1)}, []string{"DeleteRate"}},
		{"negative MaxDeletes", Config{MaxDeletes: -1}, []string{"MaxDeletes"}},
		{"every problem at once", Config{Grace: -1, DeleteRate: -1, MaxDeletes: -1}, []string{"Grace", "DeleteRate", "MaxDeletes"}},
	} {
		err := c.cfg.Validate()
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v, want valid", c.name, err)
			}
			continue
		}
		if !errors.Is(err, blockstore.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", c.name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %s", c.name, err, w)
			}
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Grace != DefaultGrace || c.Now == nil || c.Logger == nil {
		t.Errorf("defaults: grace %v, Now set %v, Logger set %v", c.Grace, c.Now != nil, c.Logger != nil)
	}
}
