package driver

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestCapabilitiesRoundTrip(t *testing.T) {
	in := map[string]any{
		"int": 1, "neg": -300, "big": int64(math.MaxInt64), "huge": uint64(math.MaxUint64),
		"float": 1.5, "f32": float32(0.5), "str": "节点", "bytes": []byte{0, 1, 2},
		"true": true, "nil": nil, "list": []any{1, "a", []any{}},
		"map": map[string]any{"nested": map[string]any{"x": 2.25}}, "empty": map[string]any{},
	}
	b, err := EncodeCapabilities(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCapabilities(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"int": int64(1), "neg": int64(-300), "big": int64(math.MaxInt64), "huge": uint64(math.MaxUint64),
		"float": 1.5, "f32": 0.5, "str": "节点", "bytes": []byte{0, 1, 2},
		"true": true, "nil": nil, "list": []any{int64(1), "a", []any{}},
		"map": map[string]any{"nested": map[string]any{"x": 2.25}}, "empty": map[string]any{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
	for _, empty := range []map[string]any{nil, {}} {
		b, err := EncodeCapabilities(empty)
		if err != nil || b != nil {
			t.Fatalf("empty caps encode to %v, %v", b, err)
		}
	}
	if m, err := DecodeCapabilities(nil); err != nil || len(m) != 0 {
		t.Fatalf("nil decodes to %v, %v", m, err)
	}
}

// BenchmarkDecodeCapabilities decodes a compute host's usual capabilities:
// GetAll decodes one per member.
func BenchmarkDecodeCapabilities(b *testing.B) {
	caps, err := EncodeCapabilities(map[string]any{"zone": "a", "cpus": 64, "tags": []any{"ssd", "gpu"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if m, err := DecodeCapabilities(caps); err != nil || len(m) != 3 {
			b.Fatal(m, err)
		}
	}
}

func TestDecodeCapabilitiesRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"not a map": {0x01},
		"truncated": {0x82, 0xa1},
		"garbage":   {0xc1},
	} {
		if _, err := DecodeCapabilities(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "compute-1.example.com", "节点-ü", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateName("group", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for name, why := range map[string]string{
		"": "empty", strings.Repeat("x", MaxNameLen+1): "longer than", "a\x00b": "NUL",
		"a/b": "path separator", `a\b`: "path separator", ".": "not a usable", "..": "not a usable",
		"a\nb": "control", "\xff": "UTF-8",
	} {
		err := ValidateName("member", name)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: got %v, want ErrInvalidName mentioning %q", name, err, why)
		}
	}
	if err := ValidateLockName(ElectionLock("g")); !errors.Is(err, ErrInvalidName) {
		t.Errorf("reserved prefix accepted: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://user:secret@host:6379/0":     "redis://user:xxxxx@host:6379/0",
		"postgres://h/db?password=secret&x=1": "postgres://h/db?password=xxxxx&x=1",
		"file:///var/lib/muster":              "file:///var/lib/muster",
		"redis://u:sec%zz@host":               "redis://xxxxx@host",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpError(t *testing.T) {
	err := Errorf("file", "join", "compute", ErrGroupNotFound)
	if err.Error() != `file: join "compute": group not found` || !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("%v", err)
	}
	if Errorf("x", "y", "", err) != err {
		t.Fatal("rewrapped an OpError")
	}
}
