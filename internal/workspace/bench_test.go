package workspace

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/hangar-ci/hangar/internal/source"
)

// words make text-like contents, which compress about as well as source
// code or logs.
var words = []string{
	"func", "return", "if", "err", "nil", "package", "import", "the", "and", "for", "range", "string", "int",
	"var", "const", "type", "struct", "{", "}", "(", ")", "\n", "\t", "value", "context", "error", "build",
	"test", "config", "0", "1", "42", "true", "false", "// TODO", "name", "path", "file", "job", "agent",
}

// benchTree writes about 100 MB of mixed files below dir, half random bytes
// (which do not compress) and half text-like, in big, middling and (unless
// bigOnly) 3,000 small files, and returns their total size.
func benchTree(b *testing.B, dir string, bigOnly bool) int64 {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(n int) []byte {
		var buf bytes.Buffer
		buf.Grow(n + 16)
		for buf.Len() < n {
			buf.WriteString(words[rng.IntN(len(words))])
			buf.WriteByte(' ')
		}
		return buf.Bytes()[:n]
	}
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				p[i+j] = byte(v >> (8 * j))
			}
		}
		return p
	}
	var total int64
	write := func(name string, data []byte, perm os.FileMode) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, perm); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	for i := range 48 { // 48 MiB of binaries
		write(fmt.Sprintf("bin/tool%02d", i), random(1<<20), 0o755)
	}
	for i := range 160 { // 40 MiB of text
		write(fmt.Sprintf("reports/r%03d.txt", i), text(256<<10), 0o644)
	}
	if bigOnly {
		for i := range 12 { // the same 12 MiB in big files
			write(fmt.Sprintf("reports/big%02d.txt", i), text(1<<20), 0o644)
		}
	} else {
		for i := range 3000 { // 12 MiB of small files, in many directories
			write(fmt.Sprintf("node_modules/m%02d/lib/f%04d.js", i%50, i), text(4<<10), 0o644)
		}
	}
	return total
}

var everything = Selection{Paths: []string{"."}}

func BenchmarkPack(b *testing.B) {
	src := b.TempDir()
	size := benchTree(b, src, false)
	b.SetBytes(size)
	var archived int64
	for b.Loop() {
		set, err := Select(b.Context(), src, everything)
		if err != nil {
			b.Fatal(err)
		}
		stats, err := Pack(b.Context(), io.Discard, src, set, 0)
		if err != nil {
			b.Fatal(err)
		}
		archived = stats.ArchiveBytes
	}
	b.ReportMetric(float64(archived)/float64(size), "ratio")
}

// BenchmarkPackUpload packs into the body of an HTTP request to a server
// on the loopback interface, as an agent uploads artifacts.
func BenchmarkPackUpload(b *testing.B) {
	src := b.TempDir()
	size := benchTree(b, src, false)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	b.SetBytes(size)
	for b.Loop() {
		set, err := Select(b.Context(), src, everything)
		if err != nil {
			b.Fatal(err)
		}
		pr, pw := io.Pipe()
		go func() {
			_, err := Pack(b.Context(), pw, src, set, 0)
			pw.CloseWithError(err)
		}()
		resp, err := http.Post(srv.URL, "application/gzip", pr)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
}

// packed returns the benchmark tree packed, and its size unpacked.
func packed(b *testing.B, bigOnly bool) ([]byte, int64) {
	b.Helper()
	src := b.TempDir()
	size := benchTree(b, src, bigOnly)
	set, err := Select(b.Context(), src, everything)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Pack(b.Context(), &buf, src, set, 0); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), size
}

// unpackInto unpacks each time into a new workspace that holds one file,
// and removes the last one with the timer stopped.
func unpackInto(b *testing.B, unpack func(dir string)) {
	parent := b.TempDir()
	for i := 0; b.Loop(); i++ {
		work := filepath.Join(parent, fmt.Sprint(i))
		b.StopTimer()
		os.RemoveAll(filepath.Join(parent, fmt.Sprint(i-1)))
		if err := os.MkdirAll(work, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "README"), []byte("source"), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		unpack(work)
	}
}

// trees are the trees the Unpack benchmarks unpack: with small files, whose
// creation may cost more than their bytes, and with big files only.
var trees = []struct {
	name    string
	bigOnly bool
}{{"mixed", false}, {"big", true}}

func BenchmarkUnpack(b *testing.B) {
	for _, tree := range trees {
		b.Run(tree.name, func(b *testing.B) {
			data, size := packed(b, tree.bigOnly)
			b.SetBytes(size)
			unpackInto(b, func(dir string) {
				if _, err := Unpack(b.Context(), bytes.NewReader(data), dir, source.Limits{}); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkDownloadUnpack unpacks the body of an HTTP response from a
// server on the loopback interface, as an agent downloads artifacts.
func BenchmarkDownloadUnpack(b *testing.B) {
	for _, tree := range trees {
		b.Run(tree.name, func(b *testing.B) {
			data, size := packed(b, tree.bigOnly)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/gzip")
				w.Write(data)
			}))
			defer srv.Close()
			b.SetBytes(size)
			unpackInto(b, func(dir string) {
				resp, err := http.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				if _, err := Unpack(b.Context(), resp.Body, dir, source.Limits{}); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
