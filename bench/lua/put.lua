-- put.lua: PUT of a new file per request: URL path .. TAG-tTHREAD-COUNTER.bin, SIZE bytes.
-- usage: wrk ... -s bench/lua/put.lua http://host:port/put/ -- TAG SIZE
-- Names are unique per run tag, thread and request, so every PUT creates a file (201).
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/stats.lua")

local counter = 0
local prefix, body

function init(args)
  local tag = args[1] or "x"
  local size = tonumber(args[2] or "65536")
  body = string.rep("d", size)
  prefix = wrk.path .. tag .. "-t" .. tostring(thread_id or 0) .. "-"
  wrk.headers["Content-Type"] = "application/octet-stream"
end

function request()
  counter = counter + 1
  return wrk.format("PUT", prefix .. counter .. ".bin", nil, body)
end
