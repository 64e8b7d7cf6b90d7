package scheduler

import "sync"

// Signal wakes every goroutine waiting for "something changed". A waiter
// takes the channel from Wait before it looks at the store, so a change
// committed between its look and its wait still wakes it.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewSignal returns a Signal.
func NewSignal() *Signal { return &Signal{ch: make(chan struct{})} }

// Wait returns a channel that is closed at the next Notify.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// Notify wakes every current waiter.
func (s *Signal) Notify() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

// Signals is a Signal per key; a key's channel exists only while someone
// waits on it.
type Signals struct {
	mu sync.Mutex
	ch map[int64]*waiters
}

// waiters is one key's channel and how many wait on it.
type waiters struct {
	c chan struct{}
	n int
}

// NewSignals returns an empty Signals.
func NewSignals() *Signals { return &Signals{ch: map[int64]*waiters{}} }

// Wait returns a channel closed at the next Notify of key, and a function
// to call once the caller stops waiting, so that keys nobody notifies any
// more (finished pipelines) do not pile up.
func (s *Signals) Wait(key int64) (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.ch[key]
	if !ok {
		w = &waiters{c: make(chan struct{})}
		s.ch[key] = w
	}
	w.n++
	return w.c, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ch[key] == w {
			if w.n--; w.n == 0 {
				delete(s.ch, key)
			}
		}
	}
}

// Notify wakes the waiters of key.
func (s *Signals) Notify(key int64) {
	s.mu.Lock()
	if w, ok := s.ch[key]; ok {
		close(w.c)
		delete(s.ch, key)
	}
	s.mu.Unlock()
}

// NotifyAll wakes the waiters of every key.
func (s *Signals) NotifyAll() {
	s.mu.Lock()
	for key, w := range s.ch {
		close(w.c)
		delete(s.ch, key)
	}
	s.mu.Unlock()
}

// Len is how many keys have waiters.
func (s *Signals) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ch)
}
