package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hangar-ci/hangar/internal/store"
)

func testLogs(t *testing.T, open opener) {
	t.Run("Sizes", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		a := newLog(t, s)
		f := newFixture(t, s, "other")
		j := f.job("other", epoch)
		createJobs(t, s, j)
		b := newAttempt(t, s, j, &store.Agent{ID: a.AgentID}, 1)
		update(t, s, func(tx store.Tx) error {
			if _, err := tx.Logs().Append(ctx, a.ID, 0, []byte("hello\n")); err != nil {
				return err
			}
			_, err := tx.Logs().Append(ctx, b.ID, 0, []byte("hi\n"))
			return err
		})
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Logs().Sizes(ctx, []int64{a.ID, b.ID, b.ID + 100})
			if err != nil {
				return err
			}
			equal(t, "Sizes", map[int64]int64{a.ID: 6, b.ID: 3}, got)
			none, err := tx.Logs().Sizes(ctx, nil)
			if err != nil || len(none) != 0 {
				t.Errorf("Sizes of no attempts: %v, %v; want none", none, err)
			}
			return nil
		})
	})

	type step struct {
		offset int64
		data   string
		size   int64 // want: the size Append returns
		gap    bool  // want a *GapError holding size
	}
	appends := []struct {
		name  string
		steps []step
		want  string // the log afterwards
	}{
		{
			name:  "one append",
			steps: []step{{0, "hello", 5, false}},
			want:  "hello",
		},
		{
			name:  "appends at the end",
			steps: []step{{0, "hello", 5, false}, {5, ", ", 7, false}, {7, "world", 12, false}},
			want:  "hello, world",
		},
		{
			name:  "retried append",
			steps: []step{{0, "hello", 5, false}, {5, " world", 11, false}, {5, " world", 11, false}},
			want:  "hello world",
		},
		{
			name:  "retried first append",
			steps: []step{{0, "hello", 5, false}, {0, "hello", 5, false}, {5, "!", 6, false}},
			want:  "hello!",
		},
		{
			name:  "append within the log",
			steps: []step{{0, "hello world", 11, false}, {2, "llo", 11, false}, {0, "", 11, false}},
			want:  "hello world",
		},
		{
			name:  "append overlapping the end adds the tail",
			steps: []step{{0, "hello", 5, false}, {3, "lo world", 11, false}},
			want:  "hello world",
		},
		{
			name:  "overlap keeps the bytes already there",
			steps: []step{{0, "hello", 5, false}, {0, "HELLO WORLD", 11, false}},
			want:  "hello WORLD",
		},
		{
			name:  "gap on an empty log",
			steps: []step{{3, "abc", 0, true}, {0, "abc", 3, false}},
			want:  "abc",
		},
		{
			name:  "gap after the end",
			steps: []step{{0, "abc", 3, false}, {4, "def", 3, true}, {3, "def", 6, false}},
			want:  "abcdef",
		},
		{
			name:  "empty append at the end",
			steps: []step{{0, "", 0, false}, {0, "abc", 3, false}, {3, "", 3, false}},
			want:  "abc",
		},
		{
			name:  "binary data",
			steps: []step{{0, "\x00\xff\r\n", 4, false}, {4, "\x1b[31mred\x1b[0m\x00", 17, false}},
			want:  "\x00\xff\r\n\x1b[31mred\x1b[0m\x00",
		},
	}
	for _, tc := range appends {
		t.Run("Append/"+tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			ctx := context.Background()
			a := newLog(t, s)
			for i, st := range tc.steps {
				var size int64
				err := s.Update(ctx, func(tx store.Tx) error {
					var err error
					size, err = tx.Logs().Append(ctx, a.ID, st.offset, []byte(st.data))
					return err
				})
				what := fmt.Sprintf("step %d: Append(%d, %q)", i, st.offset, st.data)
				if st.gap {
					var gap *store.GapError
					if !errors.As(err, &gap) {
						t.Fatalf("%s: got %d, %v; want a *store.GapError", what, size, err)
					}
					if gap.Size != st.size {
						t.Errorf("%s: GapError.Size %d, want %d", what, gap.Size, st.size)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if size != st.size {
					t.Errorf("%s: size %d, want %d", what, size, st.size)
				}
			}
			read(t, s, func(tx store.Tx) error {
				size, err := tx.Logs().Size(ctx, a.ID)
				if err != nil {
					return err
				}
				if size != int64(len(tc.want)) {
					t.Errorf("Size: %d, want %d", size, len(tc.want))
				}
				got, err := tx.Logs().Read(ctx, a.ID, 0, len(tc.want)+10)
				if err != nil {
					return err
				}
				if string(got) != tc.want {
					t.Errorf("log: %q, want %q", got, tc.want)
				}
				return nil
			})
		})
	}

	t.Run("Read", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		a := newLog(t, s)
		// Chunks "abc" "defg" "h" "ijklmnop", each from its own append, the
		// second overlapping the first.
		const log = "abcdefghijklmnop"
		for _, ap := range []struct {
			offset int64
			data   string
		}{{0, "abc"}, {1, "bcdefg"}, {7, "h"}, {8, "ijklmnop"}} {
			update(t, s, func(tx store.Tx) error {
				_, err := tx.Logs().Append(ctx, a.ID, ap.offset, []byte(ap.data))
				return err
			})
		}
		for _, tc := range []struct {
			offset int64
			limit  int
			want   string
		}{
			{0, 100, log},
			{0, len(log), log},
			{0, 3, "abc"},
			{0, 4, "abcd"},
			{1, 1, "b"},
			{2, 6, "cdefgh"},
			{3, 4, "defg"},
			{4, 2, "ef"},
			{6, 3, "ghi"},
			{7, 1, "h"},
			{5, 9, "fghijklmn"},
			{15, 10, "p"},
			{16, 10, ""},
			{100, 10, ""},
			{0, 0, ""},
		} {
			t.Run(fmt.Sprintf("%d+%d", tc.offset, tc.limit), func(t *testing.T) {
				read(t, s, func(tx store.Tx) error {
					got, err := tx.Logs().Read(ctx, a.ID, tc.offset, tc.limit)
					if err != nil {
						return err
					}
					if string(got) != tc.want {
						t.Errorf("Read(%d, %d) = %q, want %q", tc.offset, tc.limit, got, tc.want)
					}
					return nil
				})
			})
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		read(t, s, func(tx store.Tx) error {
			size, err := tx.Logs().Size(ctx, 4242)
			if err != nil || size != 0 {
				t.Errorf("Size of an unknown attempt: %d, %v; want 0, nil", size, err)
			}
			got, err := tx.Logs().Read(ctx, 4242, 0, 100)
			if err != nil || len(got) != 0 {
				t.Errorf("Read of an unknown attempt: %q, %v; want nothing", got, err)
			}
			return nil
		})
	})

	t.Run("Separate", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		j := f.job("j", epoch)
		createJobs(t, s, j)
		ag := newAgent(t, s, "a")
		a1, a2 := newAttempt(t, s, j, ag, 1), newAttempt(t, s, j, ag, 2)
		update(t, s, func(tx store.Tx) error {
			for _, ap := range []struct {
				a    *store.Attempt
				data string
			}{{a1, "one"}, {a2, "two!"}, {a1, "111"}} {
				size, err := tx.Logs().Size(ctx, ap.a.ID)
				if err != nil {
					return err
				}
				if _, err := tx.Logs().Append(ctx, ap.a.ID, size, []byte(ap.data)); err != nil {
					return err
				}
			}
			return nil
		})
		read(t, s, func(tx store.Tx) error {
			for _, want := range []struct {
				a   *store.Attempt
				log string
			}{{a1, "one111"}, {a2, "two!"}} {
				got, err := tx.Logs().Read(ctx, want.a.ID, 0, 100)
				if err != nil {
					return err
				}
				if string(got) != want.log {
					t.Errorf("log of attempt %d: %q, want %q", want.a.Number, got, want.log)
				}
			}
			return nil
		})
	})

	t.Run("Large", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		a := newLog(t, s)
		line := strings.Repeat("0123456789abcdef", 64) + "\n" // 1025 bytes
		var want strings.Builder
		update(t, s, func(tx store.Tx) error {
			for range 200 {
				if _, err := tx.Logs().Append(ctx, a.ID, int64(want.Len()), []byte(line)); err != nil {
					return err
				}
				want.WriteString(line)
			}
			return nil
		})
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Logs().Read(ctx, a.ID, 0, want.Len()+1)
			if err != nil {
				return err
			}
			if string(got) != want.String() {
				t.Errorf("log of %d bytes reads back as %d bytes, different", want.Len(), len(got))
			}
			got, err = tx.Logs().Read(ctx, a.ID, 1000, 2000)
			if err != nil {
				return err
			}
			if string(got) != want.String()[1000:3000] {
				t.Errorf("Read(1000, 2000): %d bytes, not the log's bytes 1000 to 3000", len(got))
			}
			return nil
		})
	})
}
