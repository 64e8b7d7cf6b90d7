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
	ch map[int64]chan struct{}
}

// NewSignals returns an empty Signals.
func NewSignals() *Signals { return &Signals{ch: map[int64]chan struct{}{}} }

// Wait returns a channel closed at the next Notify of key.
func (s *Signals) Wait(key int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.ch[key]
	if !ok {
		c = make(chan struct{})
		s.ch[key] = c
	}
	return c
}

// Notify wakes the waiters of key.
func (s *Signals) Notify(key int64) {
	s.mu.Lock()
	if c, ok := s.ch[key]; ok {
		close(c)
		delete(s.ch, key)
	}
	s.mu.Unlock()
}
