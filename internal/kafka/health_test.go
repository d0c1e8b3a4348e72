package kafka

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	const grace = 10 * time.Second
	h := health{grace: grace, group: "g.n"}
	t0 := time.Now()
	if err := h.err(t0); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("before begin: got %v, want not running", err)
	}
	h.begin(t0)
	if err := h.err(t0.Add(grace / 2)); err != nil {
		t.Errorf("not connected yet, within grace: got %v, want nil", err)
	}
	if err := h.err(t0.Add(grace)); !errors.Is(err, ErrUnavailable) || !errors.Is(err, errNotConnected) {
		t.Errorf("never connected, past grace: got %v, want ErrUnavailable", err)
	}
	h.connOK()
	if err := h.err(t0.Add(time.Hour)); err != nil {
		t.Errorf("connected: got %v", err)
	}

	dial := errors.New("connection refused")
	h.connFailed(dial)
	h.connFailed(errors.New("later")) // keeps the first failure's time
	now := time.Now()
	if err := h.err(now); err != nil {
		t.Errorf("just failed: got %v, want nil within grace", err)
	}
	if err := h.err(now.Add(grace)); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "later") {
		t.Errorf("failing past grace: got %v, want ErrUnavailable with the last error", err)
	}
	h.connOK()

	gerr := errors.New("GROUP_AUTHORIZATION_FAILED")
	h.groupFailed(gerr)
	now = time.Now()
	if err := h.err(now.Add(grace / 2)); err != nil {
		t.Errorf("group failing within grace: got %v", err)
	}
	if err := h.err(now.Add(grace)); !errors.Is(err, gerr) || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "g.n") {
		t.Errorf("group failing past grace: got %v, want the group error naming the group", err)
	}
	h.groupOK()
	if err := h.err(now.Add(grace)); err != nil {
		t.Errorf("group recovered: got %v", err)
	}
	h.end()
	if err := h.err(now); err == nil {
		t.Error("after end: got nil")
	}
}
