package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/status"
)

// Status reports this node's recent figures; *status.Sampler implements it.
type Status interface {
	// Report returns the totals, the samples taken after since (every kept one when since is
	// zero) and the last warnings and errors.
	Report(since time.Time) status.Report
}

// handleStatus serves GET /v1/status[?since=<Unix milliseconds>], the data of the status page:
//
//	200 status.Report: {"node","started","interval","totals":{...},"samples":[...],"errors":[...]}
//	400 validation-error (since is not a non-negative integer)    401 (no or unknown API key)
//
// The page asks once for everything, then every second for the samples after the newest it has.
// Nil st: the route does not exist (404).
func handleStatus(st Status) http.Handler {
	if st == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var since time.Time
		if s := r.URL.Query().Get("since"); s != "" {
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil || ms < 0 {
				writeProblem(w, r, validationProblem([]notification.FieldError{{Field: "since", Code: "type",
					Message: "must be a time in Unix milliseconds, e.g. the t of the newest sample"}}))
				return
			}
			since = time.UnixMilli(ms)
		}
		w.Header().Set("Cache-Control", "no-store")
		encode(w, r, http.StatusOK, st.Report(since))
	})
}
