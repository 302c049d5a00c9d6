-- propfind.lua: PROPFIND with a Depth header and an XML body.
-- usage: wrk ... -s bench/lua/propfind.lua URL -- DEPTH allprop|prop3
--   allprop: <propfind><allprop/></propfind>
--   prop3:   <propfind><prop><resourcetype/><getcontentlength/><getlastmodified/></prop></propfind>
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/stats.lua")

local bodies = {
  allprop = '<?xml version="1.0" encoding="utf-8"?>'
    .. '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
  prop3 = '<?xml version="1.0" encoding="utf-8"?>'
    .. '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/>'
    .. '<D:getlastmodified/></D:prop></D:propfind>',
}

function init(args)
  local depth = args[1] or "1"
  local body = bodies[args[2] or "allprop"] or error("unknown body " .. tostring(args[2]))
  wrk.method = "PROPFIND"
  wrk.headers["Depth"] = depth
  wrk.headers["Content-Type"] = 'application/xml; charset="utf-8"'
  wrk.body = body
  req = wrk.format()
end

function request()
  return req
end
