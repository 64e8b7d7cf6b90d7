package server_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/workspace"
)

// artifactTree writes about 96 MiB below dir, half random bytes (binaries,
// which do not compress) and half text, in files of 1 MiB, plus, when
// small is set, 12 MiB more in 3,000 files of 4 KiB (a node_modules). It
// returns the total size.
func artifactTree(b *testing.B, dir string, small bool) int64 {
	b.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	words := []string{"func", "return", "err", "nil", "package", "build", "test", "the", "value", "\n", "{", "}", "42"}
	var total int64
	write := func(name string, n int, text bool) {
		data := make([]byte, 0, n+16)
		for len(data) < n {
			if text {
				data = append(data, words[rng.IntN(len(words))]...)
				data = append(data, ' ')
			} else {
				data = append(data, byte(rng.Uint32()))
			}
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data[:n], 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(n)
	}
	for i := range 48 {
		write(fmt.Sprintf("bin/tool%02d", i), 1<<20, false)
		write(fmt.Sprintf("reports/r%02d.txt", i), 1<<20, true)
	}
	if small {
		for i := range 3000 {
			write(fmt.Sprintf("node_modules/m%02d/f%04d.js", i%50, i), 4<<10, true)
		}
	}
	return total
}

// BenchmarkArtifactsRoundTrip measures artifacts the way an agent moves
// them, against a real server on loopback: upload is Select, and Pack
// streamed into the upload (hashed, written and synced by the server);
// download is the download into a temporary file and Unpack into a
// workspace. MB/s counts the files' bytes.
func BenchmarkArtifactsRoundTrip(b *testing.B) {
	for _, small := range []bool{false, true} {
		name := "big-files"
		if small {
			name = "with-3000-small-files"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnvWith(b, time.Hour, nil)
			e.submit(map[string]string{".gitlab-ci.yml": "build: {script: [x], artifacts: {paths: [out/]}}\n"})
			as := e.claimer("bench").claim()
			src := b.TempDir()
			size := artifactTree(b, src, small)
			tmp := b.TempDir()
			b.Run("upload", func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					set, err := workspace.Select(e.ctx, src, workspace.Selection{Paths: []string{"."}})
					if err != nil {
						b.Fatal(err)
					}
					pr, pw := io.Pipe()
					go func() {
						_, err := workspace.Pack(e.ctx, pw, src, set, 0)
						pw.CloseWithError(err)
					}()
					if _, err := e.client.UploadArtifacts(e.ctx, as.AttemptID, as.Token, pr, -1); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("download", func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					f, err := os.CreateTemp(tmp, "get-*")
					if err != nil {
						b.Fatal(err)
					}
					if err := e.client.DownloadArtifacts(e.ctx, as.AttemptID, as.Token, as.JobID, f); err != nil {
						b.Fatal(err)
					}
					f.Seek(0, 0)
					dst := b.TempDir()
					if _, err := workspace.Unpack(e.ctx, f, dst, source.Limits{}); err != nil {
						b.Fatal(err)
					}
					f.Close()
					os.Remove(f.Name())
				}
			})
		})
	}
}
