package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
)

// Once the server refused an append for good, the streamer neither keeps
// the job's later output in memory nor hands it to the completion, where
// it would be appended at the offset of the bytes it lost.
func TestLogStreamerAfterRefusedAppend(t *testing.T) {
	refused := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"no"}`))
		select {
		case <-refused:
		default:
			close(refused)
		}
	}))
	defer hs.Close()
	l := newLogStreamer(api.NewClient(hs.URL), 1, "t", api.Backoff{Min: time.Millisecond, Max: time.Millisecond})
	ctx := context.Background()
	go l.run(ctx)
	l.Write([]byte("lost in the refused append\n"))
	<-refused
	<-l.done
	l.Write([]byte(strings.Repeat("later output\n", 1000)))
	if err := l.Close(ctx); err == nil {
		t.Error("Close after a refused append: no error")
	}
	if off, tail := l.Tail(); len(tail) != 0 {
		t.Errorf("Tail = %d bytes at offset %d, want none: they do not follow the server's log", len(tail), off)
	}
}
