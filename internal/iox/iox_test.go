package iox_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hangar-ci/hangar/internal/iox"
)

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := iox.ContextReader(ctx, strings.NewReader("abcdef"))
	buf := make([]byte, 3)
	if n, err := r.Read(buf); n != 3 || err != nil {
		t.Fatalf("Read = %d, %v; want 3, nil", n, err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel = %d, %v; want 0 and context.Canceled", n, err)
	}
}

func TestCounting(t *testing.T) {
	cr := &iox.CountingReader{R: strings.NewReader("hello, world")}
	var out bytes.Buffer
	cw := &iox.CountingWriter{W: &out}
	if _, err := io.Copy(cw, cr); err != nil {
		t.Fatal(err)
	}
	if cr.N != 12 || cw.N != 12 || out.String() != "hello, world" {
		t.Errorf("counted %d read, %d written, copied %q", cr.N, cw.N, out.String())
	}
}
