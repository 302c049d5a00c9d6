-- get.lua: GET of the URL given to wrk (same request every time).
-- usage: wrk ... -s bench/lua/get.lua URL
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/stats.lua")

wrk.method = "GET"
