package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/realtime-service/realtime-service/internal/config"
)

// healthcheckTimeout bounds `realtime-service healthcheck` as a whole.
const healthcheckTimeout = 3 * time.Second

// healthcheck asks the service listening on HTTP_ADDR of this machine for GET /health/live and
// returns nil on 200: the container image's HEALTHCHECK, since the distroless image has no
// shell or curl. A wildcard listen address (":3000", "0.0.0.0:3000", "[::]:3000") is asked on
// loopback. Errors say what failed; main exits 1 on them.
func healthcheck(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("healthcheck: HTTP_ADDR %q: %w", cfg.HTTP.Addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/health/live"
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s", url, resp.Status)
	}
	fmt.Fprintf(stdout, "ok: GET %s: %s\n", url, resp.Status)
	return nil
}
