package mask_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hangar-ci/hangar/internal/mask"
)

// reference masks input the slow, obvious way: find every occurrence of
// every secret, merge the ones that overlap, replace each merged span.
func reference(input string, secrets []string) string {
	type span struct{ start, end int }
	var spans []span
	for _, s := range secrets {
		if len(s) < mask.MinSecretLen {
			continue
		}
		for i := 0; i+len(s) <= len(input); i++ {
			if input[i:i+len(s)] == s {
				spans = append(spans, span{i, i + len(s)})
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	var b strings.Builder
	pos := 0
	for i := 0; i < len(spans); {
		start, end := spans[i].start, spans[i].end
		for i++; i < len(spans) && spans[i].start < end; i++ {
			end = max(end, spans[i].end)
		}
		b.WriteString(input[pos:start])
		b.WriteString(mask.Replacement)
		pos = end
	}
	b.WriteString(input[pos:])
	return b.String()
}

// writeChunked writes input through a mask.Writer in chunks of the given
// sizes (cycled; 0 counts as 1) and returns what came out.
func writeChunked(t *testing.T, input string, secrets []string, sizes []int) string {
	t.Helper()
	var out bytes.Buffer
	w := mask.NewWriter(&out, secrets)
	for i, k := 0, 0; i < len(input); k++ {
		n := 1
		if len(sizes) > 0 {
			n = max(sizes[k%len(sizes)], 1)
		}
		n = min(n, len(input)-i)
		if m, err := w.Write([]byte(input[i : i+n])); err != nil || m != n {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", input[i:i+n], m, err, n)
		}
		i += n
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return out.String()
}

func TestWriter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		input   string
		want    string
	}{
		{"no secrets", nil, "hello secret", "hello secret"},
		{"one occurrence", []string{"hunter22"}, "pw=hunter22!", "pw=[MASKED]!"},
		{"every occurrence", []string{"hunter22"}, "hunter22 hunter22\nhunter22", "[MASKED] [MASKED]\n[MASKED]"},
		{"several secrets", []string{"alpha-key", "beta-key"}, "a=alpha-key b=beta-key", "a=[MASKED] b=[MASKED]"},
		{"longest wins", []string{"secret", "secret123"}, "x secret123 y secret12", "x [MASKED] y [MASKED]12"},
		{"longest wins, listed last", []string{"secret123", "secret"}, "secret123", "[MASKED]"},
		{"overlapping secrets hide both", []string{"abcdef", "defghi"}, "_abcdefghi_", "_[MASKED]_"},
		{"secret inside another", []string{"token-with-key", "with"}, "token-with-key with", "[MASKED] [MASKED]"},
		{"self overlap", []string{"aaaa"}, "aaaaaa b aaa", "[MASKED] b aaa"},
		{"touching occurrences", []string{"abcd"}, "abcdabcd", "[MASKED][MASKED]"},
		{"partial at the end", []string{"secret"}, "no secr", "no secr"},
		{"multi-line secret", []string{"line1\nline2"}, "x line1\nline2 y line1\n", "x [MASKED] y line1\n"},
		{"empty secret ignored", []string{""}, "hello", "hello"},
		{"short secret ignored", []string{"abc"}, "abc abcd", "abc abcd"},
		{"shortest masked", []string{"abcd"}, "abc abcd", "abc [MASKED]"},
		{"duplicates", []string{"hunter22", "hunter22"}, "hunter22", "[MASKED]"},
		{"replacement text not rescanned", []string{"MASKED]"}, "[MASKED]", "[[MASKED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := mask.String(tt.input, tt.secrets); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if got := reference(tt.input, tt.secrets); got != tt.want {
				t.Fatalf("reference = %q, want %q: the test is wrong", got, tt.want)
			}
			for _, size := range []int{1, 2, 3, 5} {
				if got := writeChunked(t, tt.input, tt.secrets, []int{size}); got != tt.want {
					t.Errorf("written in chunks of %d: %q, want %q", size, got, tt.want)
				}
			}
		})
	}
}

// TestWriterHoldsBackLittle checks that output is not delayed more than it
// must be: at most len(longest secret)-1 bytes, and only while they could
// begin a secret.
func TestWriterHoldsBackLittle(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	secrets := []string{"s3cr3t-value", "pass"}
	w := mask.NewWriter(&out, secrets)
	steps := []struct {
		write string
		want  string // everything written through so far
	}{
		{"plain text\n", "plain text\n"},
		{"now s3cr", "plain text\nnow "},
		{"3t-valu", "plain text\nnow "},
		{"e and pa", "plain text\nnow [MASKED] and "},
		{"ss", "plain text\nnow [MASKED] and [MASKED]"},
		{" s3cr3t-valuX", "plain text\nnow [MASKED] and [MASKED] s3cr3t-valuX"},
		{"s3cr3t-val", "plain text\nnow [MASKED] and [MASKED] s3cr3t-valuX"},
	}
	for _, s := range steps {
		if _, err := w.Write([]byte(s.write)); err != nil {
			t.Fatalf("Write(%q): %v", s.write, err)
		}
		if got := out.String(); got != s.want {
			t.Fatalf("after Write(%q) the output is %q, want %q", s.write, got, s.want)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got, want := out.String(), "plain text\nnow [MASKED] and [MASKED] s3cr3t-valuXs3cr3t-val"; got != want {
		t.Fatalf("after Flush the output is %q, want %q", got, want)
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct {
	n   int
	err error
}

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriterErrorSticks(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, secrets := range [][]string{nil, {"hunter22"}} {
		w := mask.NewWriter(&failWriter{n: 3, err: boom}, secrets)
		if _, err := w.Write([]byte("ab")); err != nil {
			t.Fatalf("secrets %q: first Write: %v", secrets, err)
		}
		if _, err := w.Write([]byte("cdef")); !errors.Is(err, boom) {
			t.Fatalf("secrets %q: second Write = %v, want %v", secrets, err, boom)
		}
		if len(secrets) == 0 {
			continue // no state to keep: each write goes through
		}
		if _, err := w.Write([]byte("g")); !errors.Is(err, boom) {
			t.Errorf("secrets %q: Write after failure = %v, want %v", secrets, err, boom)
		}
		if err := w.Flush(); !errors.Is(err, boom) {
			t.Errorf("secrets %q: Flush after failure = %v, want %v", secrets, err, boom)
		}
	}
}

// FuzzWriter checks that however the input is cut into writes, the output is
// the same as masking the whole input at once, and that both agree with the
// obvious reference implementation.
func FuzzWriter(f *testing.F) {
	f.Add("x secret123 secret y", "secret", "secret123", []byte{1, 2, 3})
	f.Add("abcdefghi", "abcdef", "defghi", []byte{4})
	f.Add("aaaaaaaaa", "aaaa", "aaab", []byte{1})
	f.Add("line1\nline2\n", "line1\nline2", "", []byte{5, 1})
	f.Add("[MASKED]", "MASKED]", "[MASK", []byte{2})
	f.Fuzz(func(t *testing.T, input, s1, s2 string, cuts []byte) {
		secrets := []string{s1, s2}
		want := reference(input, secrets)
		if got := mask.String(input, secrets); got != want {
			t.Fatalf("String(%q, %q) = %q, want %q", input, secrets, got, want)
		}
		sizes := make([]int, len(cuts))
		for i, c := range cuts {
			sizes[i] = int(c % 17)
		}
		if got := writeChunked(t, input, secrets, sizes); got != want {
			t.Fatalf("%q with secrets %q in chunks %v: %q, want %q", input, secrets, sizes, got, want)
		}
	})
}

func BenchmarkWriter(b *testing.B) {
	line := []byte("Step 3/12 : RUN go build -o /out/app ./cmd/app && echo built with token-1234567\n")
	input := bytes.Repeat(line, 1000)
	for _, tt := range []struct {
		name    string
		secrets []string
	}{
		{"none", nil},
		{"three", []string{"token-1234567", "Sup3rS3cret!", "AKIAIOSFODNN7EXAMPLE"}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(input)))
			w := mask.NewWriter(discard{}, tt.secrets)
			for b.Loop() {
				for off := 0; off < len(input); off += 4096 {
					_, _ = w.Write(input[off:min(off+4096, len(input))])
				}
				_ = w.Flush()
			}
		})
	}
}

// discard is io.Discard without its ReadFrom, so the benchmark measures
// Write.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
