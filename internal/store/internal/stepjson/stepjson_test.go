package stepjson

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/hangar-ci/hangar/internal/store"
)

// unmarshal is what Decode must agree with: json.Unmarshal, no steps as
// nil.
func unmarshal(text []byte) ([]store.StepTiming, error) {
	var steps []store.StepTiming
	if err := json.Unmarshal(text, &steps); err != nil {
		return nil, err
	}
	if len(steps) == 0 {
		return nil, nil
	}
	return steps, nil
}

// same reports whether two lists of steps are equal, seconds bit for bit.
func same(a, b []store.StepTiming) bool {
	return (a == nil) == (b == nil) && slices.EqualFunc(a, b, func(x, y store.StepTiming) bool {
		return x.Name == y.Name && math.Float64bits(x.Seconds) == math.Float64bits(y.Seconds)
	})
}

// check decodes text and compares with encoding/json; it returns whether
// Decode took its own path.
func check(t *testing.T, d *Decoder, text []byte) (fast bool) {
	t.Helper()
	fast = d.parse(text)
	got, err := d.Decode(text)
	want, werr := unmarshal(text)
	switch {
	case (err == nil) != (werr == nil):
		t.Errorf("Decode(%q): error %v, encoding/json's %v", text, err, werr)
	case err == nil && !same(got, want):
		t.Errorf("Decode(%q) = %#v, encoding/json's %#v", text, got, want)
	}
	return fast
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		text string
		fast bool // decoded without encoding/json
	}{
		{`null`, true},
		{`[]`, true},
		{`[{"name":"script","seconds":1.5}]`, true},
		{`[{"name":"get_sources","seconds":0},{"name":"script","seconds":754.0625},{"name":"x","seconds":3e-9}]`, true},
		{`[{"name":"ünïcode ☃","seconds":-0}]`, true},
		{`[{"name":"","seconds":1E+2}]`, true},
		{`[{"name":"a","seconds":123456789012345678901234567890}]`, true},
		{`[{"name":"a","seconds":1e-400}]`, true}, // underflows to 0, as encoding/json has it
		// Valid, in a form json.Marshal does not write.
		{` []`, false},
		{`[ ]`, false},
		{`[{"name":"a","seconds":1} ]`, false},
		{`[{"seconds":1,"name":"a"}]`, false},
		{`[{"Name":"a","seconds":1}]`, false},
		{`[{"name":"a\"b","seconds":1}]`, false},
		{`[{"name":"\u003cscript\u003e","seconds":1}]`, false},
		{`[{"name":"a","seconds":1,"extra":true}]`, false},
		{`[{"name":"a"}]`, false},
		{`[null]`, false},
		{`[{}]`, false},
		{"[{\"name\":\"\xff\",\"seconds\":1}]", false}, // invalid UTF-8: encoding/json replaces it
		// Invalid: errors, as from encoding/json.
		{``, false},
		{`[`, false},
		{`[{"name":"a","seconds":1}`, false},
		{`[{"name":"a","seconds":1},]`, false},
		{`[{"name":"a","seconds":01}]`, false},
		{`[{"name":"a","seconds":1.}]`, false},
		{`[{"name":"a","seconds":.5}]`, false},
		{`[{"name":"a","seconds":+1}]`, false},
		{`[{"name":"a","seconds":1e}]`, false},
		{`[{"name":"a","seconds":Infinity}]`, false},
		{`[{"name":"a","seconds":0x10}]`, false},
		{`[{"name":"a","seconds":1e400}]`, false},
		{`[{"name":"a","seconds":"1"}]`, false},
		{"[{\"name\":\"a\tb\",\"seconds\":1}]", false},
		{`[{"name":"a","seconds":1}]x`, false},
		{`{"name":"a","seconds":1}`, false},
	} {
		var d Decoder
		if fast := check(t, &d, []byte(tc.text)); fast != tc.fast {
			t.Errorf("Decode(%q) decoded it itself: %v, want %v", tc.text, fast, tc.fast)
		}
	}
}

// TestDecodeMarshaled: what json.Marshal writes Decode reads itself,
// unless a name needed an escape.
func TestDecodeMarshaled(t *testing.T) {
	var d Decoder
	for _, steps := range [][]store.StepTiming{
		nil,
		{},
		{{Name: "script", Seconds: 0.1 + 0.2}},
		{{Name: "a", Seconds: math.MaxFloat64}, {Name: "b", Seconds: math.SmallestNonzeroFloat64}, {Name: "c", Seconds: -1e21}},
		{{Name: "get_sources", Seconds: 1e20}, {Name: "get_sources", Seconds: 1e-7}, {Name: "ünïcode", Seconds: 12.345678901234567}},
	} {
		text, err := json.Marshal(steps)
		if err != nil {
			t.Fatal(err)
		}
		if !check(t, &d, text) {
			t.Errorf("Decode(%s) left it to encoding/json", text)
		}
	}
}

// TestDecodeNotShared: the lists Decode returns share no elements, and
// appending to one leaves the next as it was.
func TestDecodeNotShared(t *testing.T) {
	var d Decoder
	text := []byte(`[{"name":"a","seconds":1},{"name":"b","seconds":2}]`)
	first, err := d.Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	first = append(first, store.StepTiming{Name: "c", Seconds: 3})
	first[0].Name = "changed"
	if want := []store.StepTiming{{Name: "a", Seconds: 1}, {Name: "b", Seconds: 2}}; !same(second, want) {
		t.Errorf("changing one list changed the next: %v, want %v", second, want)
	}
	// The slab runs out: lists carry on in a new one.
	for i := range 2 * slabSize {
		steps, err := d.Decode(text)
		if err != nil || len(steps) != 2 || cap(steps) != 2 || steps[1].Name != "b" {
			t.Fatalf("list %d: %v (cap %d), %v", i, steps, cap(steps), err)
		}
	}
}

// TestDecodeAllocs: in the form json.Marshal writes, with names already
// seen, lists come from the slab.
func TestDecodeAllocs(t *testing.T) {
	var d Decoder
	text := []byte(`[{"name":"get_sources","seconds":1.25},{"name":"script","seconds":754.0625000001}]`)
	if _, err := d.Decode(text); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := d.Decode(text); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.01 {
		t.Errorf("Decode: %v allocations per list, want about 2/%d (the slab)", allocs, slabSize)
	}
}

// FuzzDecode: Decode agrees with encoding/json on any text, and reads
// what json.Marshal writes itself unless a name needed an escape.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`null`, `[]`, `[{"name":"script","seconds":1.5}]`,
		`[{"name":"a","seconds":-0.5e-3},{"name":"b","seconds":1E+2}]`,
		`[{"seconds":1,"name":"a"}]`, `[{"name":"a\u0041","seconds":1}]`,
	} {
		f.Add([]byte(s), "script", 1.5)
	}
	var d Decoder // reused, as ListFinished does
	f.Fuzz(func(t *testing.T, text []byte, name string, seconds float64) {
		check(t, &d, text)
		if math.IsInf(seconds, 0) || math.IsNaN(seconds) {
			return
		}
		marshaled, err := json.Marshal([]store.StepTiming{{Name: name, Seconds: seconds}, {Name: "script", Seconds: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if !check(t, &d, marshaled) && !bytes.Contains(marshaled, []byte(`\`)) {
			t.Errorf("Decode(%s) left it to encoding/json", marshaled)
		}
	})
}

// BenchmarkDecode decodes what an attempt of 6 steps stores, as
// ListFinished does for each job, against encoding/json (json).
func BenchmarkDecode(b *testing.B) {
	steps := []store.StepTiming{
		{Name: "get_sources", Seconds: 1.2345678901}, {Name: "restore_cache", Seconds: 12.000123},
		{Name: "prepare_executor", Seconds: 3.9876543210987}, {Name: "script", Seconds: 754.0625000001},
		{Name: "after_script", Seconds: 0.000123456789}, {Name: "save_cache", Seconds: 8.5},
	}
	text, err := json.Marshal(steps)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stepjson", func(b *testing.B) {
		var d Decoder
		for b.Loop() {
			if _, err := d.Decode(text); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			if _, err := unmarshal(text); err != nil {
				b.Fatal(err)
			}
		}
	})
}
