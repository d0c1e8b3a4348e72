package kafka

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// health tracks the Consumer's state for Consumer.Health from two sources: the broker
// connections (franz-go hooks: a failed dial or read marks them failing, a successful read
// healthy; a fetch long-poll or heartbeat reads every few seconds even when idle) and the group
// (group-session, fetch and commit errors mark it failing; an assignment or a successful commit
// healthy). Either is reported once it has been failing for longer than grace.
type health struct {
	grace time.Duration
	group string

	mu         sync.Mutex
	running    bool
	connErr    error
	connSince  time.Time
	groupErr   error
	groupSince time.Time
}

var (
	_               kgo.HookBrokerConnect    = (*health)(nil)
	_               kgo.HookBrokerRead       = (*health)(nil)
	_               kgo.HookGroupManageError = (*health)(nil)
	errNotConnected                          = errors.New("no broker connection yet")
)

// begin marks the start of Run: not connected yet, as of now.
func (h *health) begin(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = true
	h.connErr, h.connSince = errNotConnected, now
	h.groupErr, h.groupSince = nil, time.Time{}
}

// end marks the end of Run.
func (h *health) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = false
}

func (h *health) connFailed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.connErr == nil { // failing from now; errNotConnected keeps the start of Run
		h.connSince = time.Now()
	}
	h.connErr = err
}

func (h *health) connOK() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connErr = nil
}

func (h *health) groupFailed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groupErr == nil {
		h.groupSince = time.Now()
	}
	h.groupErr = err
}

func (h *health) groupOK() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.groupErr = nil
}

// err is Consumer.Health as of now.
func (h *health) err(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.running:
		return errors.New("kafka consumer is not running")
	case h.connErr != nil && now.Sub(h.connSince) >= h.grace:
		return fmt.Errorf("kafka consumer: no broker reachable for %s: %w: %w",
			now.Sub(h.connSince).Round(time.Second), ErrUnavailable, h.connErr)
	case h.groupErr != nil && now.Sub(h.groupSince) >= h.grace:
		return fmt.Errorf("kafka consumer: group %s failing for %s: %w",
			h.group, now.Sub(h.groupSince).Round(time.Second), h.groupErr)
	}
	return nil
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *health) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.connFailed(err)
	}
}

// OnBrokerRead implements kgo.HookBrokerRead.
func (h *health) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		h.connOK()
	} else {
		h.connFailed(err)
	}
}

// OnGroupManageError implements kgo.HookGroupManageError.
func (h *health) OnGroupManageError(err error) {
	h.groupFailed(err)
}
