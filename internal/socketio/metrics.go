package socketio

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Socket.IO series. With a nil Registerer they are kept but not exposed.
type metrics struct {
	sessions       *prometheus.GaugeVec   // realtime_socketio_sessions{transport}
	upgrades       prometheus.Counter     // realtime_socketio_upgrades_total
	protocolErrors *prometheus.CounterVec // realtime_socketio_protocol_errors_total{reason}
	connects       *prometheus.CounterVec // realtime_socketio_connects_total{result}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "realtime_socketio_sessions",
			Help: "Open Engine.IO sessions by current transport (polling, websocket).",
		}, []string{"transport"}),
		upgrades: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_socketio_upgrades_total",
			Help: "Engine.IO sessions upgraded from long-polling to WebSocket.",
		}),
		protocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_socketio_protocol_errors_total",
			Help: "Requests refused and sessions closed for breaking the protocol or a limit, by reason (origin, engineio, socketio, heartbeat, duplicate_poll, duplicate_post, too_large: a message over the size limit, unread, auth_timeout: no CONNECT within REALTIME_AUTH_TIMEOUT, read_timeout: a POST body not received in time, upgrade: a failed upgrade probe, second_websocket: a second WebSocket for one session).",
		}, []string{"reason"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_socketio_connects_total",
			Help: "Socket.IO CONNECTs to the default namespace by result (ok, recovered: resumed by pid and offset or by auth cursor with every missed event, unauthorized, bad-request: a malformed auth cursorArg or cursor, too-many-connections).",
		}, []string{"result"}),
	}
	for _, k := range []transportKind{kindPolling, kindWebSocket} {
		m.sessions.WithLabelValues(k.String())
	}
	for _, r := range []string{"origin", "engineio", "socketio", "heartbeat", "duplicate_poll", "duplicate_post", "too_large", "unread", "auth_timeout", "read_timeout"} {
		m.protocolErrors.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "recovered", "unauthorized", "bad-request"} {
		m.connects.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.upgrades, m.protocolErrors, m.connects)
	}
	return m
}
