package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

// Several nodes: separate service processes on loopback sharing one broker, as in production
// (docs/design.md "Many nodes"): each consumes with its own group, so every node sees every record,
// and a cursor from one node is honoured by another.

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// binary builds the service once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "realtime-service-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "realtime-service")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = err
			buildOnce.path = string(out)
		}
	})
	if buildOnce.err != nil {
		t.Fatalf("go build: %v\n%s", buildOnce.err, buildOnce.path)
	}
	return buildOnce.path
}

// node is one service process.
type node struct {
	*service
	cmd  *exec.Cmd
	env  []string
	logs *bytes.Buffer
}

// startBroker starts an embedded broker the test owns, on a free port.
func startBroker(t *testing.T) string {
	t.Helper()
	return startBrokerPartitions(t, 3)
}

// startBrokerPartitions starts an embedded broker whose topics have partitions partitions each.
func startBrokerPartitions(t *testing.T, partitions int32) string {
	t.Helper()
	b, err := kafka.StartEmbedded(config.Kafka{EmbeddedAddr: "127.0.0.1:0", EmbeddedPartitions: partitions,
		Topics:   []config.TopicEvent{{Topic: "session-notifications", Event: "session-starting-soon"}, {Topic: "concept-notifications", Event: "concept-mastered"}},
		DLQTopic: "realtime-service.dlq"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// startNode runs the service binary as node id against broker, with env (NAME=value) on top of
// the defaults, and waits until it is ready.
func startNode(t *testing.T, broker, id string, env ...string) *node {
	t.Helper()
	addr := freeAddr(t)
	n := &node{
		service: &service{t: t, URL: "http://" + addr, Broker: broker, Group: "realtime-service." + id, DLQGroup: "realtime-service.dlq", stopped: true},
		env: append(append(os.Environ(), "KAFKA_BROKERS="+broker, "KAFKA_NODE_ID="+id, "HTTP_ADDR="+addr,
			"REALTIME_JWT_SECRET="+testSecret, "REALTIME_API_KEYS="+testAPIKey, "LOG_LEVEL=warn",
			"KAFKA_REQUEST_TIMEOUT=5000", "HTTP_SHUTDOWN_TIMEOUT=5000"), env...),
	}
	n.start(t)
	return n
}

func (n *node) start(t *testing.T) {
	t.Helper()
	n.logs = &bytes.Buffer{}
	n.cmd = exec.Command(binary(t))
	n.cmd.Env = n.env
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := n.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Errorf("node did not stop within 15 s of SIGTERM")
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(n.URL + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not ready:\n%s", n.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL: no shutdown, no commit, no goodbye.
func (n *node) kill(t *testing.T) {
	t.Helper()
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

// stopGracefully sends SIGTERM and requires exit status 0.
func (n *node) stopGracefully(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, n.logs)
	}
}

func TestThreeNodesEachSeeEveryRecord(t *testing.T) {
	broker := startBroker(t)
	nodes := []*node{startNode(t, broker, "n1"), startNode(t, broker, "n2"), startNode(t, broker, "n3")}
	p := newProducer(t, broker)
	_, onN1 := openWS(t, nodes[0].service, "alice", "")
	onN2 := openSSE(t, nodes[1].service, "alice", "").frames
	_, bobOnN3 := openWS(t, nodes[2].service, "bob", "")
	for i, n := range nodes {
		waitConnected(t, n.service, []int{1, 1, 1}[i])
	}
	var aliceIDs, bobIDs []string
	for i := range 5 {
		aliceIDs = append(aliceIDs, p.send("alice"))
		if i%2 == 0 {
			bobIDs = append(bobIDs, p.send("bob"))
		}
	}
	expectIDs(t, onN1, aliceIDs...)
	expectIDs(t, onN2, aliceIDs...)
	expectIDs(t, bobOnN3, bobIDs...)
	nodes[0].stopGracefully(t)
}

// TestResumeOnAnotherNode: a client leaves node 1 and comes back on node 2 with node 1's cursor:
// it gets exactly what it missed, then live events.
func TestResumeOnAnotherNode(t *testing.T) {
	broker := startBroker(t)
	n1, n2 := startNode(t, broker, "n1"), startNode(t, broker, "n2")
	p := newProducer(t, broker)
	ws, frames := openWS(t, n1.service, "alice", "")
	waitConnected(t, n1.service, 1)
	last := expectIDs(t, frames, p.send("alice"), p.send("bob", "alice"))
	ws.Close()
	waitConnected(t, n1.service, 0)
	missed := []string{p.send("alice"), p.send("alice", "carol"), p.send("alice")}
	p.send("bob")
	_, frames = openWS(t, n2.service, "alice", last.Cursor)
	expectIDs(t, frames, missed...)
	expectIDs(t, frames, p.send("alice"))
}

// TestKilledNodeLosesNothingForClientsThatResume: node 2 is killed with SIGKILL while a client
// is connected; records are produced while it is down; it restarts with the same node ID and the
// client, resuming with its cursor, gets every missed event exactly once.
func TestKilledNodeLosesNothingForClientsThatResume(t *testing.T) {
	broker := startBroker(t)
	n2 := startNode(t, broker, "n2")
	p := newProducer(t, broker)
	_, frames := openWS(t, n2.service, "alice", "")
	waitConnected(t, n2.service, 1)
	last := expectIDs(t, frames, p.send("alice"), p.send("alice"))

	n2.kill(t)
	var missed []string
	for range 4 {
		missed = append(missed, p.send("alice"))
		p.send("bob")
	}
	n2.start(t)
	_, frames = openWS(t, n2.service, "alice", last.Cursor)
	expectIDs(t, frames, missed...)
	expectIDs(t, frames, p.send("alice"))

	// The restarted node consumes live again, from where its group left off.
	_, fresh := openWS(t, n2.service, "dave", "")
	waitConnected(t, n2.service, 2)
	expectIDs(t, fresh, p.send("dave"))
}

// TestRetriedNotificationReachesTheUserOnce: the same notification POSTed three times with one
// Idempotency-Key, to three different nodes (a producer retrying after timeouts behind a load
// balancer), reaches the user once, live on every node and in a resume from Kafka.
func TestRetriedNotificationReachesTheUserOnce(t *testing.T) {
	broker := startBroker(t)
	var nodes []*node
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startNode(t, broker, id, "REALTIME_HISTORY_SIZE=0")) // resumes read Kafka
	}
	post := func(n *node, name, key string) string {
		t.Helper()
		body := `{"conceptId":"c1","userIds":["alice"],"conceptName":"` + name + `","masteryLevel":1}`
		req, _ := http.NewRequest(http.MethodPost, n.URL+"/v1/notifications/concept-mastered", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", testAPIKey)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST to %s: %d %v", n.URL, resp.StatusCode, err)
		}
		return out.ID
	}
	var live []<-chan frame
	for _, n := range nodes {
		_, frames := openWS(t, n.service, "alice", "")
		waitConnected(t, n.service, 1)
		live = append(live, frames)
	}
	before := post(nodes[0], "before", "") // same concept: same partition, so frames keep this order
	var cursor string
	for _, l := range live {
		cursor = expectIDs(t, l, before).Cursor
	}

	first := post(nodes[0], "mastered", "retry-7")
	if again := post(nodes[0], "mastered", "retry-7"); again != first {
		t.Errorf("the node that answered first answered its retry with %s, want the first answer %s", again, first)
	}
	post(nodes[1], "mastered", "retry-7") // other nodes produce again: the record is dropped
	post(nodes[2], "mastered", "retry-7")
	after := post(nodes[2], "after", "")
	for _, l := range live {
		expectIDs(t, l, first, after)
	}
	_, resumed := openWS(t, nodes[1].service, "alice", cursor)
	expectIDs(t, resumed, first, after)
	for _, n := range nodes {
		if got := metric(t, n.URL, "realtime_duplicates_dropped_total", `topic="concept-notifications"`); got != 2 {
			t.Errorf("%s: realtime_duplicates_dropped_total = %v, want 2", n.URL, got)
		}
	}
}

// TestPoisonRecordsAreDeadLetteredOncePerCluster: with three nodes, each consuming every record
// with its own group, five poison records give exactly five dead letters, one per record: the
// dead-letter duty's shared group gives each partition to one node.
func TestPoisonRecordsAreDeadLetteredOncePerCluster(t *testing.T) {
	broker := startBroker(t)
	var nodes []*node
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startNode(t, broker, id))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	topics := []string{"session-notifications", "concept-notifications"}
	for _, n := range nodes {
		waitCommitted(t, adm, n.Group, topics) // every node consumes from here on
	}
	waitCommitted(t, adm, "realtime-service.dlq", topics)
	waitUntil(t, "the three nodes to share the dead-letter duty", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		groups, err := adm.DescribeGroups(ctx, "realtime-service.dlq")
		g := groups["realtime-service.dlq"]
		return err == nil && g.State == "Stable" && len(g.Members) == 3
	})

	const topic = "concept-notifications"
	var sources []string
	for i := range 5 {
		rec := &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(`{"conceptId":"c","userIds":"alice"}`)}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		sources = append(sources, fmt.Sprintf("%d:%d", rec.Partition, rec.Offset))
	}
	// Every group past the poison records: every copy that will be made was made (commits never
	// pass an unresolved copy; before the dead-letter duty, each node's group copied them).
	for _, g := range []string{"realtime-service.n1", "realtime-service.n2", "realtime-service.n3", "realtime-service.dlq"} {
		waitDeadLetterDuty(t, broker, g, topic)
	}
	ends, err := adm.ListEndOffsets(context.Background(), "realtime-service.dlq")
	if err != nil || ends.Error() != nil {
		t.Fatal(err, ends.Error())
	}
	var copies []string
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			return
		}
		fetched, err := readPartition(cl, "realtime-service.dlq", o.Partition, o.Offset)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range fetched {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			copies = append(copies, h["dlq-source-partition"]+":"+h["dlq-source-offset"])
		}
	})
	slices.Sort(copies)
	slices.Sort(sources)
	if !slices.Equal(copies, sources) {
		t.Errorf("dead letters of %v, want exactly one of each poison record %v", copies, sources)
	}
	var skipped float64
	for _, n := range nodes {
		skipped += metric(t, n.URL, "kafka_consumer_poison_skipped_total", `topic="`+topic+`"`)
	}
	if skipped != 15 {
		t.Errorf("kafka_consumer_poison_skipped_total summed over the nodes = %v, want 15 (each node skips each)", skipped)
	}
}

// readPartition reads the records of topic's partition below end.
func readPartition(seed *kgo.Client, topic string, partition int32, end int64) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seed.OptValue(kgo.SeedBrokers).([]string)...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for int64(len(recs)) < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		recs = append(recs, fs.Records()...)
	}
	return recs, nil
}
