package kafka

import (
	"log/slog"
	"strings"
	"testing"
)

func TestSampledLog(t *testing.T) {
	tests := []struct {
		name        string
		lines       int
		wantFull    int
		wantSummary string // "" for none
	}{
		{"few lines, all in full", 3, 3, ""},
		{"a flood, summarised", 1000, sampleBurst, "count=995"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf logBuffer
			l := newSampledLog(slog.New(slog.NewTextHandler(&buf, nil)), slog.LevelWarn, "summary")
			for i := range tc.lines {
				l.Log([]string{"a", "b"}[i%2], "line", "i", i)
			}
			l.Close()
			l.Log("a", "line", "after", "close") // after Close: in full
			out := buf.String()
			if got := strings.Count(out, "msg=line"); got != tc.wantFull+1 {
				t.Errorf("%d lines in full, want %d:\n%s", got, tc.wantFull+1, out)
			}
			summaries := strings.Count(out, "msg=summary")
			switch {
			case tc.wantSummary == "" && summaries != 0,
				tc.wantSummary != "" && (summaries != 1 || !strings.Contains(out, tc.wantSummary) || !strings.Contains(out, `by="map[a:497 b:498]"`)):
				t.Errorf("summary lines: %d, want %q:\n%s", summaries, tc.wantSummary, out)
			}
		})
	}
}
