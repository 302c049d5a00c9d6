-- stats.lua: shared by every bench/lua/*.lua script (loaded with dofile, see BENCH_LUA_DIR).
-- Counts non-2xx answers per thread and prints one machine-readable line when wrk is done:
--   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N non2xx=N sockerr=N
-- wrk runs setup()/done() in the main Lua state and init()/request()/response() in one state
-- per thread; thread:get() reads a thread's globals.

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_id", #threads)
end

non2xx = 0

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d sockerr=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(99), bad,
    e.connect + e.read + e.write + e.timeout))
end
