package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	keyA = bytes.Repeat([]byte{0xa1}, 32)
	keyB = bytes.Repeat([]byte{0xb2}, 48)
	keyC = bytes.Repeat([]byte{0xc3}, 32)
)

func newTestSigner(t testing.TB, clk *fakeClock, keys ...[]byte) *Signer {
	t.Helper()
	s, err := NewSigner(SignerConfig{Keys: keys, TTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testClaims() Claims {
	return Claims{User: "Alice", UserID: 42, Shard: 3, Namespace: 77, Admin: true}
}

// craft signs an arbitrary payload with key in the token format.
func craft(key []byte, raw []byte) string {
	return TokenPrefix + tokenEncoding.EncodeToString(raw) + "." + tokenEncoding.EncodeToString(mac(key, raw))
}

// payloadOf returns the decoded JSON payload of token.
func payloadOf(t *testing.T, token string) []byte {
	t.Helper()
	body, _, _ := strings.Cut(strings.TrimPrefix(token, TokenPrefix), ".")
	raw, err := tokenEncoding.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// withField returns the payload of token with key set to value.
func withField(t *testing.T, token, key string, value any) []byte {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(payloadOf(t, token), &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	clk := newFakeClock()
	s := newTestSigner(t, clk, keyA)
	tests := map[string]Claims{
		"defaults filled": testClaims(),
		"non-admin":       {User: "bob", UserID: 1, Shard: 0, Namespace: 1},
		"explicit fields": {
			User: "carol", UserID: 1<<64 - 1, Shard: 1<<64 - 1, Namespace: 9,
			IssuedAt: clk.Now().Add(-10 * time.Minute), Expires: clk.Now().Add(5 * time.Minute),
			ID: "0123456789abcdef0123456789abcdef",
		},
		"unicode user": {User: "zoë <&> \"quoted\"", UserID: 5},
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			token, full, err := s.Issue(in)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(token, TokenPrefix) {
				t.Fatalf("token %q lacks prefix", token)
			}
			if full.User != in.User || full.UserID != in.UserID || full.Shard != in.Shard || full.Namespace != in.Namespace || full.Admin != in.Admin {
				t.Fatalf("Issue changed identity claims: %+v -> %+v", in, full)
			}
			wantIssued := in.IssuedAt
			if wantIssued.IsZero() {
				wantIssued = clk.Now()
			}
			if got, want := full.IssuedAt, wantIssued.Truncate(time.Second); !got.Equal(want) {
				t.Errorf("IssuedAt %v, want %v", got, want)
			}
			if in.Expires.IsZero() {
				if got, want := full.Expires, full.IssuedAt.Add(time.Hour); !got.Equal(want) {
					t.Errorf("Expires %v, want IssuedAt+TTL %v", got, want)
				}
			} else if got, want := full.Expires, in.Expires.Truncate(time.Second); !got.Equal(want) {
				t.Errorf("Expires %v, want %v", got, want)
			}
			if in.ID != "" && full.ID != in.ID {
				t.Errorf("ID %q, want %q", full.ID, in.ID)
			}
			if !validID(full.ID) {
				t.Errorf("ID %q is not 32 hex digits", full.ID)
			}
			got, err := s.Verify(token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !reflect.DeepEqual(got, full) {
				t.Fatalf("Verify = %+v, want %+v", got, full)
			}
		})
	}
}

func TestIssueUniqueIDs(t *testing.T) {
	s := newTestSigner(t, newFakeClock(), keyA)
	seen := map[string]bool{}
	for range 100 {
		_, c, err := s.Issue(testClaims())
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] {
			t.Fatalf("duplicate ID %s", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestIssueInvalidClaims(t *testing.T) {
	clk := newFakeClock()
	s := newTestSigner(t, clk, keyA)
	tests := map[string]Claims{
		"empty user":       {UserID: 1},
		"non-UTF-8 user":   {User: "a\xffb"},
		"short ID":         {User: "a", ID: "abc"},
		"upper-case ID":    {User: "a", ID: "0123456789ABCDEF0123456789ABCDEF"},
		"expires <= issue": {User: "a", IssuedAt: clk.Now(), Expires: clk.Now().Add(-time.Second)},
		"sub-second TTL":   {User: "a", IssuedAt: clk.Now(), Expires: clk.Now().Add(100 * time.Millisecond)},
		"too long":         {User: strings.Repeat("u", MaxTokenLen)},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			token, _, err := s.Issue(c)
			if !errors.Is(err, ErrInvalidClaims) {
				t.Fatalf("Issue = %q, %v; want ErrInvalidClaims", token, err)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	clk := newFakeClock()
	s := newTestSigner(t, clk, keyA)
	token, _, err := s.Issue(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	body, sig, _ := strings.Cut(strings.TrimPrefix(token, TokenPrefix), ".")
	raw := payloadOf(t, token)
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x01
		return b
	}
	macBytes, _ := tokenEncoding.DecodeString(sig)
	other := newTestSigner(t, clk, keyC)
	otherToken, _, _ := other.Issue(testClaims())
	// bigUser makes a correctly signed token just over MaxTokenLen.
	bigUser := withField(t, token, "u", strings.Repeat("x", MaxTokenLen))

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrInvalidToken},
		{"prefix only", TokenPrefix, ErrInvalidToken},
		{"no MAC", TokenPrefix + body, ErrInvalidToken},
		{"empty MAC", TokenPrefix + body + ".", ErrInvalidToken},
		{"truncated MAC", token[:len(token)-2], ErrInvalidToken},
		{"truncated payload", TokenPrefix + body[:len(body)-4] + "." + sig, ErrInvalidToken},
		{"extra part", token + ".AAAA", ErrInvalidToken},
		{"payload byte flip (first)", TokenPrefix + tokenEncoding.EncodeToString(flip(raw, 0)) + "." + sig, ErrInvalidToken},
		{"payload byte flip (middle)", TokenPrefix + tokenEncoding.EncodeToString(flip(raw, len(raw)/2)) + "." + sig, ErrInvalidToken},
		{"payload byte flip (last)", TokenPrefix + tokenEncoding.EncodeToString(flip(raw, len(raw)-1)) + "." + sig, ErrInvalidToken},
		{"MAC byte flip (first)", TokenPrefix + body + "." + tokenEncoding.EncodeToString(flip(macBytes, 0)), ErrInvalidToken},
		{"MAC byte flip (last)", TokenPrefix + body + "." + tokenEncoding.EncodeToString(flip(macBytes, 31)), ErrInvalidToken},
		{"MAC of another token", TokenPrefix + body + "." + strings.SplitN(otherToken, ".", 3)[2], ErrInvalidToken},
		{"non-canonical base64", TokenPrefix + body + "." + sig[:len(sig)-1] + string(sig[len(sig)-1]+1), ErrInvalidToken},
		{"padded base64", TokenPrefix + body + "." + sig + "=", ErrInvalidToken},
		{"other key", otherToken, ErrInvalidToken},
		{"wrong prefix version", "v2." + body + "." + sig, ErrInvalidToken},
		{"no prefix", body + "." + sig, ErrInvalidToken},
		{"signed payload version 1 (before session epochs)", craft(keyA, withField(t, token, "v", 1)), ErrInvalidToken},
		{"signed payload version 3", craft(keyA, withField(t, token, "v", 3)), ErrInvalidToken},
		{"signed payload without version", craft(keyA, []byte(`{"u":"a","uid":1,"sh":1,"ns":1,"iat":1,"exp":2,"jti":"0123456789abcdef0123456789abcdef"}`)), ErrInvalidToken},
		{"signed unknown field", craft(keyA, withField(t, token, "role", "root")), ErrInvalidToken},
		{"signed wrong type", craft(keyA, withField(t, token, "uid", "42")), ErrInvalidToken},
		{"signed trailing data", craft(keyA, append(bytes.Clone(raw), []byte(` {}`)...)), ErrInvalidToken},
		{"signed not JSON", craft(keyA, []byte("hello")), ErrInvalidToken},
		{"signed empty user", craft(keyA, withField(t, token, "u", "")), ErrInvalidToken},
		{"signed bad ID", craft(keyA, withField(t, token, "jti", "xyz")), ErrInvalidToken},
		{"signed exp before iat", craft(keyA, withField(t, token, "exp", 5)), ErrInvalidToken},
		{"oversize (signed)", craft(keyA, bigUser), ErrInvalidToken},
		{"oversize (garbage)", TokenPrefix + strings.Repeat("A", MaxTokenLen), ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.Verify(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
			if c != (Claims{}) {
				t.Errorf("claims %+v returned with error", c)
			}
			if msg := err.Error(); len(tt.token) > 8 && (strings.Contains(msg, tt.token) || strings.Contains(msg, body) || strings.Contains(msg, sig)) {
				t.Errorf("error %q echoes the token", msg)
			}
		})
	}
	if _, err := s.Verify(craft(keyA, bigUser)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("oversize token: %v, want the size check to refuse it first", err)
	}
}

func TestVerifyTimes(t *testing.T) {
	clk := newFakeClock()
	s := newTestSigner(t, clk, keyA)
	issue := func(c Claims) string {
		t.Helper()
		token, _, err := s.Issue(c)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	base := clk.Now().Truncate(time.Second)
	tests := []struct {
		name    string
		claims  Claims
		advance time.Duration
		want    error
	}{
		{"fresh", testClaims(), 0, nil},
		{"just before expiry", testClaims(), time.Hour - time.Second, nil},
		{"at expiry", Claims{User: "a", IssuedAt: base, Expires: base.Add(time.Hour)}, time.Hour, ErrExpired},
		{"after expiry", testClaims(), time.Hour + time.Minute, ErrExpired},
		{"long expired", testClaims(), 1000 * time.Hour, ErrExpired},
		{"issued 30s ahead (skew)", Claims{User: "a", IssuedAt: base.Add(30 * time.Second)}, 0, nil},
		{"issued 1min ahead (skew limit)", Claims{User: "a", IssuedAt: base.Add(MaxClockSkew)}, 0, nil},
		{"issued 2min ahead", Claims{User: "a", IssuedAt: base.Add(2 * time.Minute)}, 0, ErrInvalidToken},
		{"issued a day ahead", Claims{User: "a", IssuedAt: base.Add(24 * time.Hour)}, 0, ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			s.now = clk.Now
			token := issue(tt.claims)
			clk.Advance(tt.advance)
			_, err := s.Verify(token)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify after %v: %v, want %v", tt.advance, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Errorf("error echoes token")
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	clk := newFakeClock()
	old := newTestSigner(t, clk, keyA)
	both := newTestSigner(t, clk, keyB, keyA)   // new key signs, old still verifies
	newOnly := newTestSigner(t, clk, keyB)      // old key dropped
	oldToken, _, err := old.Issue(testClaims()) // signed with keyA
	if err != nil {
		t.Fatal(err)
	}
	newToken, _, err := both.Issue(testClaims()) // signed with keyB
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		signer *Signer
		token  string
		ok     bool
	}{
		{"old token, old key only", old, oldToken, true},
		{"old token, old key still listed", both, oldToken, true},
		{"old token, old key dropped", newOnly, oldToken, false},
		{"new token, both keys", both, newToken, true},
		{"new token, new key only", newOnly, newToken, true},
		{"new token, old key only", old, newToken, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.signer.Verify(tt.token)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidToken)) {
				t.Fatalf("Verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestSignerKeysCopied(t *testing.T) {
	clk := newFakeClock()
	key := bytes.Clone(keyA)
	s := newTestSigner(t, clk, key)
	token, _, err := s.Issue(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	key[0] ^= 0xff
	if _, err := s.Verify(token); err != nil {
		t.Fatalf("changing the caller's key slice affected the Signer: %v", err)
	}
}

func TestSignerConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  SignerConfig
		want []string // substrings every one of which must be reported
	}{
		{"valid", SignerConfig{Keys: [][]byte{keyA}}, nil},
		{"valid with TTL", SignerConfig{Keys: [][]byte{keyA, keyB}, TTL: time.Minute}, nil},
		{"no keys", SignerConfig{}, []string{"no Keys"}},
		{"short key", SignerConfig{Keys: [][]byte{keyA, make([]byte, 31)}}, []string{"Keys[1] is 31 bytes"}},
		{"negative TTL", SignerConfig{Keys: [][]byte{keyA}, TTL: -1}, []string{"TTL"}},
		{"sub-second TTL", SignerConfig{Keys: [][]byte{keyA}, TTL: time.Millisecond}, []string{"TTL"}},
		{"all at once", SignerConfig{Keys: [][]byte{nil, make([]byte, 8)}, TTL: -time.Hour}, []string{"Keys[0] is 0 bytes", "Keys[1] is 8 bytes", "TTL -1h0m0s < 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			_, nerr := NewSigner(tt.cfg)
			if tt.want == nil {
				if err != nil || nerr != nil {
					t.Fatalf("Validate = %v, NewSigner = %v; want nil", err, nerr)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !errors.Is(nerr, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, NewSigner = %v; want ErrInvalidConfig", err, nerr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// BenchmarkVerify measures Verify of a typical token; compare with
// BenchmarkSHA256Payload, a plain SHA-256 of a payload of the same size.
func BenchmarkVerify(b *testing.B) {
	s := newTestSigner(b, newFakeClock(), keyA, keyB)
	token, _, err := s.Issue(testClaims())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSHA256Payload(b *testing.B) {
	s := newTestSigner(b, newFakeClock(), keyA)
	token, _, err := s.Issue(testClaims())
	if err != nil {
		b.Fatal(err)
	}
	body, _, _ := strings.Cut(strings.TrimPrefix(token, TokenPrefix), ".")
	raw, _ := tokenEncoding.DecodeString(body)
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(raw)
	}
}
