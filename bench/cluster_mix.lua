-- Used by bench/cluster_bench.py: every connection walks the request paths in the file
-- BENCH_PATHS_FILE (one per line) from its own starting point, sending BENCH_HEADERS ("Name: value" lines) with
-- each; prints one machine-readable summary line with the latency percentiles and the count
-- of non-2xx answers (wrk's own status error count starts at 400 only).
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS_FILE")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local extra = {}
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then extra[name] = value end
end
local threads = {}

setup = function(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

init = function(args)
  position = (id * 7919) % #paths
  non2xx = 0
end

request = function()
  position = position % #paths + 1
  return wrk.format("GET", paths[position], extra)
end

response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

done = function(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
