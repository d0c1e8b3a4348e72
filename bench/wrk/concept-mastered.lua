-- wrk script: POST /v1/notifications/concept-mastered with a valid body (DESIGN.md shape), cycling
-- over 64 concept IDs so that the records spread over the topic's partitions by key.
--
--   API_KEY=<one of REALTIME_API_KEYS> wrk -t2 -c64 -d30s --latency \
--     -s bench/wrk/concept-mastered.lua http://127.0.0.1:3000/v1/notifications/concept-mastered
--
-- `go run ./bench wrk` starts a broker and a node and runs exactly this. At the end the script
-- prints one line starting with WRKJSON: the totals and latency percentiles (microseconds) as JSON.

local requests = {}
local n = 0

function init(args)
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-API-Key"] = os.getenv("API_KEY") or "",
  }
  for k = 1, 64 do
    local body = string.format(
      '{"conceptId":"c%d","userIds":["bench-nobody"],"conceptName":"bench","masteryLevel":0.5}', k)
    requests[k] = wrk.format("POST", nil, headers, body)
  end
end

function request()
  n = n % #requests + 1
  return requests[n]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"mean_us":%.1f,"p50_us":%d,' ..
    '"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
