package realtime

import "github.com/prometheus/client_golang/prometheus"

// metrics are the hub's Prometheus series. With a nil Registerer they are kept but not exposed.
type metrics struct {
	connections *prometheus.GaugeVec   // realtime_connections{transport}
	disconnects *prometheus.CounterVec // realtime_disconnects_total{reason}
	// writeTimeouts: realtime_write_timeouts_total, the connections closed because one write
	// blocked for REALTIME_WRITE_TIMEOUT (a client that stopped reading).
	writeTimeouts prometheus.Counter
	published     prometheus.Counter     // realtime_events_published_total
	deliveries    prometheus.Counter     // realtime_deliveries_total
	replayed      prometheus.Counter     // realtime_replayed_events_total
	resyncs       *prometheus.CounterVec // realtime_resyncs_total{reason}
	replays       *prometheus.CounterVec // realtime_replays_total{source}
	expired       *prometheus.CounterVec // realtime_events_expired_total{path}
	collapsed     prometheus.Counter     // realtime_events_collapsed_total
	// cursorFrames: realtime_cursor_frames_total{reason}, the cursor control frames sent
	// (open, count: REALTIME_CURSOR_EVERY events since the last, tick, asked, final).
	cursorFrames *prometheus.CounterVec
	refreshes    *prometheus.CounterVec // realtime_token_refreshes_total{transport,result}

	historyBytes  prometheus.Gauge // realtime_history_bytes
	historyEvents prometheus.Gauge // realtime_history_events
	historyUsers  prometheus.Gauge // realtime_history_users
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "realtime_connections",
			Help: "Live client connections by transport (websocket, sse, socketio).",
		}, []string{"transport"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_disconnects_total",
			Help: "Closed client connections by reason (slow = send queue overflow).",
		}, []string{"reason"}),
		writeTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_write_timeouts_total",
			Help: "Client connections closed because a write blocked for REALTIME_WRITE_TIMEOUT (counted in realtime_disconnects_total as client_gone too).",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_events_published_total",
			Help: "Events handed to the hub for fan-out.",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_deliveries_total",
			Help: "Event frames queued to connections (one per event per connection).",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_replayed_events_total",
			Help: "Missed events sent to resuming connections.",
		}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_resyncs_total",
			Help: "Resumes that could not be honoured, by reason; the client got a resync event.",
		}, []string{"reason"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_replays_total",
			Help: "Resumes that missed events, by where the events came from (memory or kafka).",
		}, []string{"source"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_events_expired_total",
			Help: "Events not delivered because their expires-at or ttl-ms had passed, by path: live (at publish) or replay (per resume).",
		}, []string{"path"}),
		collapsed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_events_collapsed_total",
			Help: "Events a resume did not replay because a newer one of their collapse-key was replayed.",
		}),
		cursorFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_cursor_frames_total",
			Help: "Cursor control frames sent to clients by reason: open (the connection opened or a resume's replay ended), count (REALTIME_CURSOR_EVERY events since the last), tick (a keepalive tick, the hub having moved), asked (the client asked), final (shutdown).",
		}, []string{"reason"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_token_refreshes_total",
			Help: "Tokens a client sent on its open connection to refresh it in place, by transport (websocket, socketio) and result (ok: the expiry moved; invalid: refused, the connection keeps its expiry; other-user: the connection was closed, 4003 on WebSocket).",
		}, []string{"transport", "result"}),
		historyBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_history_bytes",
			Help: "Estimated memory of the in-memory resume history (REALTIME_HISTORY_*).",
		}),
		historyEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_history_events",
			Help: "Events kept in the in-memory resume history (each once, whatever its recipients).",
		}),
		historyUsers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_history_users",
			Help: "Users with events in the in-memory resume history.",
		}),
	}
	m.expired.WithLabelValues(pathLive)
	for _, why := range []string{cursorOpen, cursorCount, cursorTick, cursorAsked, cursorFinal} {
		m.cursorFrames.WithLabelValues(why)
	}
	m.expired.WithLabelValues(pathReplay)
	for _, f := range []Format{FormatWebSocket, FormatSSE, FormatSocketIO} {
		m.connections.WithLabelValues(formatName(f))
	}
	for _, f := range []Format{FormatWebSocket, FormatSocketIO} {
		for _, r := range []string{refreshOK, refreshInvalid, refreshOtherUser} {
			m.refreshes.WithLabelValues(formatName(f), r)
		}
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.disconnects, m.writeTimeouts, m.published, m.deliveries, m.replayed, m.resyncs,
			m.replays, m.expired, m.collapsed, m.cursorFrames, m.refreshes, m.historyBytes, m.historyEvents, m.historyUsers)
	}
	return m
}

// The path label values of realtime_events_expired_total.
const (
	pathLive   = "live"
	pathReplay = "replay"
)

func formatName(f Format) string {
	switch f {
	case FormatWebSocket:
		return "websocket"
	case FormatSSE:
		return "sse"
	default:
		return "socketio"
	}
}

func disconnectName(d Disconnect) string {
	switch d.Code {
	case DisconnectShutdown.Code:
		return "shutdown"
	case DisconnectSlow.Code:
		return "slow"
	case DisconnectTokenExpired.Code:
		return "token_expired"
	case DisconnectProtocol.Code:
		return "protocol"
	case DisconnectPingTimeout.Code:
		return "ping_timeout"
	case DisconnectTooBig.Code:
		return "too_big"
	case DisconnectOtherUser.Code:
		return "other_user"
	default:
		return "client_gone"
	}
}
